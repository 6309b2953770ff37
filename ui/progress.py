"""Long runs say how long they will take before they start, show a progress bar while they compute, and nothing
at all when the answer is cached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from interp import LoadedModel
from interp.cost import CostEstimate, seconds_per_evaluation
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


@st.cache_data(max_entries=64, show_spinner=False)
def _seconds_per_evaluation(_model: LoadedModel, weights: str, n_tokens: int, _token_ids: tuple[int, ...]) -> float:
    return seconds_per_evaluation(_model, _token_ids)


def measured_seconds_per_evaluation(model: LoadedModel, token_ids: Sequence[int]) -> float:
    """Seconds one evaluation of a prompt this long takes on this model: timed once per (weights, prompt length)."""
    ids = tuple(int(i) for i in token_ids)
    return _seconds_per_evaluation(model, model.info.weights_sha256, len(ids), ids)


def show_estimate(estimate: CostEstimate, shorter: str = "fewer steps or prompts shorten it") -> None:
    """The estimated time before a run's button: a caption, or a warning when the run will take minutes."""
    if estimate.long:
        st.warning(f"{estimate.warning(shorter)} (Estimate: {estimate.describe()}.)")
    else:
        st.caption(f"Estimated time: {estimate.describe()}.")
