"""Session-independent caches of core results (detached, on CPU) so reruns don't recompute.

The model parameter is named ``_model`` so Streamlit does not hash it; ``weights`` (its weights
hash) stands in for it in the cache key.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from interp import LoadedModel
from interp.attribution import Attribution, Faithfulness, Target, attribute, faithfulness
from interp.runs import Progress, RunSpec

DISPLAY_LIMIT = 256  # tokens: beyond this a pattern view is too dense to read and slow to draw


@st.cache_data(max_entries=64, show_spinner=False)
def cached_attribution(
    _model: LoadedModel, weights: str, prompt: str, target: Target, method: str, options: tuple, budget: int, seed: int
) -> tuple[Attribution, Faithfulness]:
    result = attribute(_model, prompt, target, method, budget=budget, seed=seed, **dict(options))
    return result, faithfulness(_model, result)


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_run(_model: LoadedModel, weights: str, kind: str, digest: str, _spec: RunSpec, _progress: Progress | None):
    return _spec.run(_model, _progress)


def cached_run(model: LoadedModel, spec: RunSpec, progress: Progress | None = None) -> Any:
    """``spec.run(model)``, computed once per (weights, spec) for every session: a rerun that changes no setting
    costs a cache lookup. ``progress`` is called only when the run really happens."""
    return _cached_run(model, model.info.weights_sha256, spec.kind, spec.digest(), spec, progress)
