"""``python -m serve``: load the model and serve the OpenAI-compatible API (``make serve``; docs/SERVING.md).

Binds 127.0.0.1:8000 by default. Listening anywhere else needs an API key (``--api-key`` or ``STEERSCOPE_API_KEY``):
without one the server refuses to start.
"""

from __future__ import annotations

import argparse
import sys

from interp.errors import SteerscopeError
from serve.settings import ENV_API_KEY, ServerSettings, api_key_from_env, check_bind

DEFAULTS = ServerSettings()


def parse_settings(argv: list[str] | None = None) -> tuple[ServerSettings, str | None]:
    """The settings, and the vector library's folder (None: the default)."""
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULTS.host, help="bind address (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULTS.port)
    parser.add_argument(
        "--model", default=None, help="model spec as for the app: a folder, a hub id, a .gguf (default: embedded SmolLM2)"
    )
    parser.add_argument("--api-key", default=None, help=f"require Authorization: Bearer <key> (default: ${ENV_API_KEY})")
    parser.add_argument(
        "--max-queue", type=int, default=DEFAULTS.max_queue, help="requests in flight before 429 (default: %(default)s)"
    )
    parser.add_argument("--max-tokens", type=int, default=DEFAULTS.max_tokens, help="the most tokens one request may ask for")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULTS.max_body_bytes)
    parser.add_argument("--max-upload-bytes", type=int, default=DEFAULTS.max_upload_bytes)
    parser.add_argument(
        "--library", default=None, help="vector library folder (default: data/vectors, or $STEERSCOPE_DATA/vectors)"
    )
    args = parser.parse_args(argv)
    settings = ServerSettings(
        host=args.host, port=args.port, api_key=api_key_from_env(args.api_key), max_queue=args.max_queue,
        max_tokens=args.max_tokens, max_body_bytes=args.max_body_bytes, max_upload_bytes=args.max_upload_bytes, model=args.model,
    )  # fmt: skip
    return settings, args.library


def main(argv: list[str] | None = None) -> int:
    try:
        settings, library_folder = parse_settings(argv)
        check_bind(settings)  # before the model loads: a refusal should not take a minute
    except SteerscopeError as error:
        print(f"steerscope serve: {error}", file=sys.stderr)
        return 2
    import uvicorn

    from interp import load_model
    from interp.threads import on_own_thread
    from serve.api import create_app
    from serve.experiments import ExperimentBook
    from serve.library import VectorLibrary

    try:
        model = on_own_thread(lambda: load_model(settings.model), name="steerscope-load")  # interp/threads.py: why
    except SteerscopeError as error:
        print(f"steerscope serve: {error}", file=sys.stderr)
        return 2
    library = VectorLibrary(library_folder, max_upload_bytes=settings.max_upload_bytes)
    app = create_app(model, settings, library=library, experiments=ExperimentBook(model=model))
    print(f"Serving {model.info.name} on http://{settings.host}:{settings.port}/v1 (vectors in {library.folder})", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
