"""Long runs show a progress bar while they compute, and nothing at all when the answer is cached."""

from __future__ import annotations

from typing import Any

import streamlit as st

from interp import LoadedModel
from interp.runs import RunSpec
from ui.cached import cached_run, is_cached


def run_with_progress(model: LoadedModel, spec: RunSpec, text: str) -> Any:
    """``cached_run(model, spec)`` with a bar fed by the run's own progress (fraction and message)."""
    if is_cached(model, spec):
        return cached_run(model, spec)
    bar = st.progress(0.0, text=text)
    try:
        return cached_run(model, spec, lambda done, message: bar.progress(min(max(done, 0.0), 1.0), text=message or text))
    finally:
        bar.empty()
