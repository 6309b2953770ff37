"""Serving: an OpenAI-compatible HTTP API over the engine, with per-request steering, monitoring and A/B tests.

``make serve`` starts it on 127.0.0.1 (docs/SERVING.md). The package depends on ``interp`` and ``steering``; they
never import it.
"""
