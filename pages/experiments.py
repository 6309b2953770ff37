"""Experiments: every kept run — list, open, replay, compare two, export a report."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from interp.records import RunRecord, RunStore, UnfinishedSave, compare_runs, export_report, figure_png, replay
from interp.records.summary import summary_table
from ui.errors import shown_as_message
from ui.model import require_model
from ui.records import run_store
from ui.render import md_escape

KEY_KIND = "exp_kind"
KEY_TEXT = "exp_text"
KEY_PICK = "exp_pick"
MAX_PICKED = 12  # a report of a dozen runs is already long; opening each one renders its settings
KEY_REPLAY = "exp_replay"
KEY_COMPARE = "exp_compare"
KEY_RESULTS = "exp_results"
KEY_REMOVED = "exp_removed"  # the unfinished saves this session's visits removed, so the note survives reruns


def unfinished_note(removed: list[UnfinishedSave]) -> str:
    """One line saying which unfinished saves were removed ("1 unfinished save from 12:03 UTC was removed ...")."""
    times = sorted(dt.datetime.fromisoformat(save.started) for save in removed)
    today = dt.datetime.now(dt.UTC).date()
    when = [t.strftime("%H:%M") if t.date() == today else t.strftime("%Y-%m-%d %H:%M") for t in (times[0], times[-1])]
    span = f"from {when[0]} UTC" if when[0] == when[-1] else f"from {when[0]} to {when[-1]} UTC"
    count = f"1 unfinished save {span} was" if len(removed) == 1 else f"{len(removed)} unfinished saves {span} were"
    return f"{count} removed: the app or Python stopped while saving. Every run saved in full is kept."


def removed_saves(store: RunStore) -> list[UnfinishedSave]:
    """Clean up after saves that died part-way (see :meth:`RunStore.cleanup`); returns all this session has removed."""
    removed = st.session_state.setdefault(KEY_REMOVED, [])
    removed.extend(store.cleanup())
    return removed


def listed_runs(store: RunStore) -> list[RunRecord]:
    """The kept runs, filtered by kind and by text in notes, model and settings."""
    filters = st.columns([1, 2])
    everything = store.list()
    kinds = sorted({r.kind for r in everything})
    kind = filters[0].selectbox("Kind", ["all", *kinds], key=KEY_KIND)
    text = filters[1].text_input("Search notes, model and settings", key=KEY_TEXT)
    return store.list(None if kind == "all" else kind, text)


def runs_table(records: list[RunRecord]) -> list[str]:
    """The table of runs and the picker; returns the picked run ids."""
    table = pd.DataFrame(
        [
            {"run": r.run_id[:8], "kind": r.kind, "model": r.model_name, "when (UTC)": r.finished[:19].replace("T", " "),
             "note": r.note}
            for r in records
        ]
    )  # fmt: skip
    st.dataframe(table, hide_index=True)
    labels = {r.run_id: f"{r.run_id[:8]} · {r.kind} · {r.note or 'no note'}" for r in records}
    return st.multiselect(
        "Select one run to open, two of the same kind to compare, or several to export as one report",
        list(labels),
        format_func=labels.get,
        key=KEY_PICK,
        max_selections=MAX_PICKED,
    )


def run_card(model, record: RunRecord) -> None:
    """One opened run: its settings, its results (numbers with units, and the figure), provenance and a Replay button."""
    with st.container(border=True):
        st.markdown(f"**{md_escape(record.title)}** — run {md_escape(record.run_id)}")
        settings = record.settings
        st.dataframe(pd.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]}), hide_index=True)
        with shown_as_message("Showing the results"):
            summary = summary_table(record.result)
            if summary:
                st.markdown("**Results**")
                st.dataframe(pd.DataFrame(summary), hide_index=True, key=f"{KEY_RESULTS}_{record.run_id}")
            png = figure_png(record.result, record.title)
            if png is not None:
                st.image(png, caption=f"{record.title}: the report's figure")
            if not summary and png is None:
                st.caption("This run's result has no numbers to summarise; its JSON is in the exported report.")
        st.caption(
            "Weights SHA-256 " + record.weights_sha256[:16] + "... · " + ", ".join(f"{k} {v}" for k, v in record.versions.items())
        )
        if st.button("Replay", key=f"{KEY_REPLAY}_{record.run_id}"):
            with shown_as_message("Replaying"), st.spinner("Re-running the analysis from its spec"):
                outcome = replay(model, record)
                if outcome.matches:
                    how = "bitwise" if outcome.tolerance == 0 else f"within {outcome.tolerance:g}"
                    st.success(f"Same results ({how}): {outcome.compared:,} numbers compared.")
                else:
                    difference = outcome.max_abs_difference
                    st.error(f"Different results: largest difference {difference:.3g} over {outcome.compared:,} numbers.")


def comparison(first: RunRecord, second: RunRecord) -> None:
    with shown_as_message("Comparing"):
        result = compare_runs(first, second)
        st.subheader("Compare")
        st.dataframe(pd.DataFrame(result.settings_diff, columns=["setting", "first", "second"]), hide_index=True)
        if result.metrics:
            metrics = pd.DataFrame(result.metrics, columns=["number", "first", "second"])
            metrics["difference"] = metrics["second"] - metrics["first"]
            st.dataframe(metrics, hide_index=True, key=KEY_COMPARE)
        st.caption("Results: " + md_escape(result.describe()))


st.title("Experiments")
st.caption(
    "Every run you kept: what was run, on which weights, with which settings and seed — replay it, compare two, export a report."
)
model = require_model()
store = run_store()
st.caption(f"Store: {md_escape(store.uri)} (set STEERSCOPE_TRACKING_URI to use your own MLflow tracking server).")
with shown_as_message("Cleaning up unfinished saves"):
    if removed := removed_saves(store):
        st.info(md_escape(unfinished_note(removed)), icon=":material/cleaning_services:")
records: list[RunRecord] = []
with shown_as_message("Reading the runs"):
    records = listed_runs(store)
if not records:
    st.info("No runs yet. Use “Keep this run” on an analysis page (Attention, Attribution, Circuits, Steering, Reward & RLHF).")
    st.stop()
picked = runs_table(records)
if picked:
    with shown_as_message("Opening the runs"):
        opened = [store.load(run_id) for run_id in picked]
    for record in opened:
        run_card(model, record)
    if len(opened) == 2:
        comparison(*opened)
    if len(opened) > 2:
        st.caption("Comparing takes exactly two runs; the report below takes them all.")
    st.download_button(
        f"Export a report of {len(opened)} run{'s' if len(opened) > 1 else ''} (Markdown, LaTeX, PNG figures, JSON; zip)",
        data=lambda: export_report(opened),
        file_name="steerscope_report.zip",
        mime="application/zip",
        on_click="ignore",
    )
