"""The sidebar's status line: what the shared model's engine decodes now, and what else holds the model."""

from __future__ import annotations

import streamlit as st

from interp import LoadedModel
from interp.engine import engine_for
from interp.hooks import model_busy


def engine_status_line(model: LoadedModel) -> str:
    """E.g. "Engine: 2 generation(s), 5 rows decoding · 1 waiting · model: Patching sweep for 12 s"."""
    line = engine_for(model).status().describe()
    holder = model_busy(model)
    if holder is not None and holder.description not in ("run", "generation"):
        line += f" · model: {holder.description} for {holder.seconds:.0f} s"
    return line


def show_engine_status(model: LoadedModel | None) -> None:
    if model is not None:
        st.sidebar.caption(engine_status_line(model), help="Every session's generations decode together on one engine; "
                           "long analyses take turns with them, one chunk at a time.")  # fmt: skip
