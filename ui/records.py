"""The "Keep this run" box every analysis page shows, and the shared run store."""

from __future__ import annotations

from typing import Any

import streamlit as st

from interp import LoadedModel
from interp.records import RunStore, new_record
from interp.runs import RunSpec
from ui.errors import shown_as_message
from ui.render import md_escape

KEY_ON_SCREEN = "ui_specs_on_screen"  # kind -> the spec whose result the page shows now


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    """One store per server process (MLflow clients are thread-safe; saves take a lock)."""
    return RunStore()


def specs_on_screen() -> dict[str, RunSpec]:
    """The spec behind each result shown in this session, by kind (what "Keep this run" would save)."""
    return st.session_state.setdefault(KEY_ON_SCREEN, {})


def keep_run(model: LoadedModel, spec: RunSpec, result: Any, *, key: str, figures: dict | None = None, label: str = "") -> None:
    """A small form to save what is on screen — ``spec`` and its ``result`` — as a replayable run, with a note.

    ``label`` names what is kept when a page shows several keepable results side by side.
    """
    specs_on_screen()[spec.kind] = spec
    title = f"Keep this run: {label}" if label else f"Keep this run ({spec.title or spec.kind})"
    with st.expander(title, icon=":material/bookmark:"):
        note = st.text_input("Note (what you were checking)", key=f"{key}_note")
        if st.button("Save run", key=f"{key}_save"):
            with shown_as_message("Saving the run"):
                run_id = run_store().save(new_record(model, spec, result, note=note), figures)
                st.success(f"Saved as run {md_escape(run_id[:8])}. Open the Experiments page to replay, compare or export it.")
