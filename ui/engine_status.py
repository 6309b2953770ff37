"""The sidebar's engine corner: what the shared model's engine decodes now, and fast mode for generation."""

from __future__ import annotations

import streamlit as st

from interp import LoadedModel
from interp.engine import engine_for
from interp.fast import FastAgreement, fast_agreement, fast_copy
from interp.hooks import model_busy
from steering.fast import SweepAgreement, sweep_agreement

KEY_FAST = "fast_generation"
AGREEMENT_PROMPTS = (
    "I think the weather today is", "The capital of France is", "My favourite food", "Once upon a time",
    "When Mary and John went to the store, John gave a drink to", "The best way to learn is",
    "Here is a short poem about the sea:", "The meeting is scheduled for",
)  # fmt: skip


def engine_status_line(model: LoadedModel) -> str:
    """E.g. "2 generation(s), 5 rows decoding · 1 waiting · model: Patching sweep for 12 s"."""
    line = engine_for(model).status().describe()
    holder = model_busy(model)
    if holder is not None and holder.description not in ("run", "generation"):
        line += f" · model: {holder.description} for {holder.seconds:.0f} s"
    return line


@st.cache_resource(show_spinner=False, max_entries=2)
def _fast_copy(_model: LoadedModel, weights: str) -> LoadedModel:
    return fast_copy(_model)


@st.cache_resource(show_spinner=False, max_entries=2)
def _agreement(_model: LoadedModel, _fast: LoadedModel, weights: str) -> FastAgreement:
    return fast_agreement(_model, _fast, AGREEMENT_PROMPTS, n_tokens=16)


@st.cache_resource(show_spinner=False, max_entries=2)
def _sweep_agreement(_model: LoadedModel, _fast: LoadedModel, weights: str) -> SweepAgreement:
    """A small sweep of the built-in sentiment vector on both copies: what fast mode changes in a sweep's answer."""
    from steering import built_in, mean_difference
    from steering.scores import SENTIMENT

    layer = min(4, _model.info.n_layers - 1)  # the built-in recipe's layer where the model has it
    vector = mean_difference(_model, built_in("sentiment"), layers=[layer], position="mean")
    return sweep_agreement(_model, _fast, vector, SENTIMENT, layers=[layer], coefficients=[-4.0, 4.0])


def _is_compressed_copy(model: LoadedModel) -> bool:
    from interp.compression.variants import is_quantised

    return model.info.dtype != "float32" or is_quantised(model)


def generation_model(model: LoadedModel) -> LoadedModel:
    """The model generation-heavy work runs on: ``model`` itself, or its bf16 copy when fast mode is on."""
    if not st.session_state.get(KEY_FAST) or _is_compressed_copy(model):
        return model
    return _fast_copy(model, model.info.weights_sha256)


def engine_sidebar(model: LoadedModel | None) -> None:
    if model is None:
        return
    st.sidebar.caption(
        engine_status_line(model),
        help="Every session's generations decode together on one engine; long analyses take turns with them.",
    )
    compressed = _is_compressed_copy(model)
    fast = st.sidebar.toggle(
        "Fast generation (bf16)", key=KEY_FAST, disabled=compressed,
        help="The Steering page's samples, sweeps and batch evaluations decode with bf16 weights (faster on CPUs "
        "with AVX-512 BF16). Analyses — attention, attribution, circuits, the lens — always run in fp32, exactly.",
    )  # fmt: skip
    if compressed:
        st.sidebar.caption("Fast generation is off: the pages already run on a compressed copy.")
    elif fast:
        with st.sidebar, st.spinner("Loading the bf16 copy and measuring its agreement with fp32"):
            copy = _fast_copy(model, model.info.weights_sha256)
            agreement = _agreement(model, copy, model.info.weights_sha256)
            on_a_sweep = _sweep_agreement(model, copy, model.info.weights_sha256)
        st.sidebar.caption(f"{agreement.describe()} (teacher-forced on {agreement.n_prompts} prompts); {on_a_sweep.describe()}.")
