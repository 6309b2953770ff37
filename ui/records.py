"""The "Keep this run" box every analysis page shows, and the shared run store."""

from __future__ import annotations

from typing import Any

import streamlit as st

from interp import LoadedModel
from interp.records import RunStore, new_record
from ui.errors import shown_as_message
from ui.render import md_escape


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    """One store per server process (MLflow clients are thread-safe; saves take a lock)."""
    return RunStore()


def keep_run(
    model: LoadedModel,
    kind: str,
    inputs: dict,
    settings: dict,
    result: Any,
    *,
    key: str,
    seed: int | None = None,
    figures: dict | None = None,
) -> None:
    """A small form to save what is on screen as a replayable run, with a note."""
    with st.expander("Keep this run", icon=":material/bookmark:"):
        note = st.text_input("Note (what you were checking)", key=f"{key}_note")
        if st.button("Save run", key=f"{key}_save"):
            with shown_as_message("Saving the run"):
                run_id = run_store().save(new_record(model, kind, inputs, settings, result, seed=seed, note=note), figures)
                st.success(f"Saved as run {md_escape(run_id[:8])}. Open the Experiments page to replay, compare or export it.")
