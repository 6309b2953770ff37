"""The sidebar model picker and the one shared, cached model.

``st.cache_resource`` keeps one :class:`~interp.LoadedModel` per spec for the whole server: every
session and thread gets the same object. That is safe because pages never mutate it, and every
run of it goes through :func:`interp.intervene`, which holds the model's lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from interp import DEFAULT_MODEL_NAME, LoadedModel, SteerscopeError, load_model
from interp.loading import ModelInfo
from ui.errors import show_error
from ui.render import md_escape

DEFAULT_CHOICE = f"{DEFAULT_MODEL_NAME} (embedded)"
OTHER_CHOICE = "Other: a folder, a .gguf file or a hub id"
KEY_CHOICE = "model_choice"
KEY_CUSTOM = "model_custom_spec"
KEY_LOAD_PROBLEM = "_model_load_problem"
KEY_MODEL = "_loaded_model"  # what every page runs on: the loaded model, or the compressed copy chosen below it
KEY_ORIGINAL = "_original_model"  # the loaded model itself (the Compression page compares against it)
KEY_VARIANT = "model_variant"
AS_LOADED = "the model as loaded"
KEY_REROUTED = "_rerouted_through_app"
ENV_MODEL = "STEERSCOPE_MODEL"  # lets tests and users start the app on another model


@st.cache_resource(show_spinner=False, max_entries=2)
def _cached_model(spec: str) -> LoadedModel:
    # The bar is created inside the cached function, so Streamlit replays it (already emptied)
    # on cache hits instead of complaining about an outside element being written to.
    bar = st.sidebar.progress(0.0, text="Loading model")

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=md_escape(message))  # it can name the user's file

    try:
        return load_model(spec or None, progress=report)
    finally:
        bar.empty()


@st.cache_resource(show_spinner=False, max_entries=2)
def _cached_variant(_model: LoadedModel, weights: str, name: str) -> LoadedModel:
    from interp.compression import make_variant
    from interp.compression.study import DEFAULT_VARIANTS

    variant = next(v for v in DEFAULT_VARIANTS if v.describe() == name)
    return make_variant(_model, variant)


def variant_choices() -> list[str]:
    from interp.compression.study import DEFAULT_VARIANTS

    return [AS_LOADED, *(variant.describe() for variant in DEFAULT_VARIANTS)]


def variant_sidebar(model: LoadedModel) -> LoadedModel:
    """Let every page run on a compressed copy of the loaded model (bf16, int8, int4, pruned)."""
    name = st.selectbox("Run every page on", variant_choices(), key=KEY_VARIANT,
                        help="A compressed copy of the loaded model, made here (the Compression page measures what "
                        "each costs). Work that rewrites or reads weight matrices — edge circuits, orthogonalised "
                        "export — says so on a quantised copy.")  # fmt: skip
    if name == AS_LOADED:
        return model
    with st.spinner(f"Making the copy: {name}"):
        variant = _cached_variant(model, model.info.weights_sha256, name)
    st.caption(f"Pages run on a compressed copy: **{md_escape(name)}**.")
    return variant


def original_model() -> LoadedModel | None:
    """The model as loaded, even while the pages run on a compressed copy of it."""
    return st.session_state.get(KEY_ORIGINAL)


def selected_spec() -> str:
    """The model spec chosen in the sidebar ('' means the embedded default)."""
    choice = st.session_state.get(KEY_CHOICE, DEFAULT_CHOICE)
    if choice == OTHER_CHOICE:
        return str(st.session_state.get(KEY_CUSTOM, "")).strip()
    return os.environ.get(ENV_MODEL, "")


def _choice_label(choice: str) -> str:
    """The first choice is the embedded model, unless the app was started on another one."""
    started_on = os.environ.get(ENV_MODEL, "")
    if choice == DEFAULT_CHOICE and started_on:
        return f"{Path(started_on).name or started_on} (from {ENV_MODEL})"
    return choice


def model_sidebar() -> LoadedModel | None:
    """Draw the model picker, load the chosen model (cached), and show what it is."""
    with st.sidebar:
        st.selectbox("Model", [DEFAULT_CHOICE, OTHER_CHOICE], key=KEY_CHOICE, format_func=_choice_label)
        if st.session_state.get(KEY_CHOICE) == OTHER_CHOICE:
            st.text_input(
                "Folder, .gguf path or hub id",
                key=KEY_CUSTOM,
                placeholder="/path/to/checkpoint or HuggingFaceTB/SmolLM2-360M",
                help="A Hugging Face checkpoint folder (config.json + safetensors), a GGUF file, or a hub id "
                "already in the local Hugging Face cache. Nothing is downloaded.",
            )
        spec = selected_spec()
        st.session_state[KEY_LOAD_PROBLEM] = None
        if st.session_state.get(KEY_CHOICE) == OTHER_CHOICE and not spec:
            st.session_state[KEY_LOAD_PROBLEM] = "Type a checkpoint folder, a .gguf path or a hub id in the sidebar."
            st.info(st.session_state[KEY_LOAD_PROBLEM])
            return None
        try:
            model = _cached_model(spec)
        except Exception as exc:  # a folder or file the user typed can fail in any way: say so here, not as a crash
            st.session_state[KEY_LOAD_PROBLEM] = (
                str(exc) if isinstance(exc, SteerscopeError) else f"Loading it failed unexpectedly ({type(exc).__name__})."
            )
            show_error("Loading the model", exc)
            return None
        info = model.info
        st.caption(
            f"**{md_escape(info.name)}** · {parameter_count(info.n_params)} · {info.n_layers} layers · "
            f"{info.n_heads} heads · {info.device}"
        )
        st.session_state[KEY_ORIGINAL] = model
        if st.session_state.get(KEY_VARIANT) not in variant_choices():
            st.session_state[KEY_VARIANT] = AS_LOADED
        try:
            model = variant_sidebar(model)
        except Exception as exc:  # a copy that cannot be made (memory, an odd architecture): the original stays in use
            st.session_state[KEY_VARIANT] = AS_LOADED
            show_error("Making the compressed copy", exc)
    return model


def parameter_count(n_params: int) -> str:
    """A parameter count as people read it: "134.5 M parameters", "1.7 B parameters", and exactly below a million
    ("51,968 parameters": a tiny model is not "0 M")."""
    if n_params >= 1e9:
        return f"{n_params / 1e9:.1f} B parameters"
    if n_params >= 1e6:
        return f"{n_params / 1e6:.1f} M parameters"
    return f"{n_params:,} parameters"


ROW_HEIGHT = 35  # Streamlit's dataframe row (and header) height in pixels; the frame adds 3 for its border


def model_card_rows(info: ModelInfo) -> list[tuple[str, str]]:
    """The model card's table: the core's rows, the parameter count as people read it, and no Source (a path too long
    for a table cell: :func:`model_card` shows it in full below)."""
    rows = []
    for label, value in info.as_rows():
        if label == "Source":
            continue
        rows.append((label, parameter_count(info.n_params).removesuffix(" parameters") if label == "Parameters" else value))
    return rows


def model_card(info: ModelInfo) -> None:
    """The model card: a table exactly as tall as its rows (no empty row under them), then where the model came from."""
    rows = model_card_rows(info)
    st.dataframe(
        pd.DataFrame(rows, columns=["", "value"]), hide_index=True, width="stretch", height=ROW_HEIGHT * (len(rows) + 1) + 3
    )
    st.caption("Source")
    st.code(info.source, language=None, wrap_lines=True)


def ensure_app_shell() -> None:
    """Make sure this page runs inside app.py (navigation, model picker), not on its own.

    A page run without app.py is Streamlit's legacy pages/ mode, which it switches off only when
    st.navigation is called. If a freshly started server's first request is a page URL (a bookmark),
    that never happens. Switch it off and rerun: app.py then builds the navigation and loads the
    model, and the page (same script hash) is kept. Every page calls this first, directly or
    through :func:`require_model`."""
    if KEY_MODEL not in st.session_state and not st.session_state.get(KEY_REROUTED):
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.session_state[KEY_REROUTED] = True
        st.rerun()


def require_model() -> LoadedModel:
    """The model the sidebar loaded, or stop the page with a message if there is none."""
    ensure_app_shell()
    model = st.session_state.get(KEY_MODEL)
    if model is None:
        problem = st.session_state.get(KEY_LOAD_PROBLEM) or "Choose one in the sidebar."
        st.warning(f"No model is loaded. {md_escape(problem)}")
        st.stop()
    return model
