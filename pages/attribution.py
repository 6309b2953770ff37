"""Attribution: which input tokens made the model say this? Several methods side by side, with a faithfulness check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from interp.attribution import (
    COMPARED_BY_DEFAULT,
    METHODS,
    AttributionComparison,
    AttributionMethod,
    AttributionRun,
    MethodComparison,
    Target,
)
from interp.attribution.tables import attribution_cost, comparison_frame, cost_frame
from interp.attribution_batch import (
    BatchAttribution,
    BatchItem,
    BatchResult,
    batch_frame,
    batch_json,
    driving_tokens,
    mean_faithfulness,
)
from interp.plots.attribution import driving_tokens_bar, faithfulness_curves, method_comparison, normalised
from interp.prompt_files import MAX_PROMPT_TOKENS, MAX_ROWS, PromptFile, read_prompt_file
from interp.tokens import tokenize
from ui.cached import cached_run
from ui.downloads import csv_download, json_download
from ui.errors import shown_as_message
from ui.model import require_model
from ui.progress import measured_seconds_per_evaluation, show_estimate
from ui.records import keep_run
from ui.render import md_escape, token_chips, warn_unknown_text

KEY_PROMPT = "attr_prompt"
KEY_TARGET_KIND = "attr_target_kind"
KEY_TOKEN = "attr_token"
KEY_OTHER = "attr_other"
KEY_CONTINUATION = "attr_continuation"
KEY_METHODS = "attr_methods"
KEY_BUDGET = "attr_budget"
KEY_SEED = "attr_seed"
KEY_OPTION_PREFIX = "attr_"  # + a method option's name: attr_max_evals, attr_n_steps, attr_n_samples
KEY_RUN = "attr_run"
KEY_COMPARISON = "attr_comparison"  # the spec whose results are on screen (set by the Run button)
KEY_KEEP = "attr_keep"
KEY_UPLOAD = "attr_upload"
KEY_BATCH_METHODS = "attr_batch_methods"
KEY_BATCH_RUN = "attr_batch_run"
KEY_BATCH_STOP = "attr_batch_stop"
KEY_BATCH_STATE = "attr_batch_state"
KEY_BATCH_ROW = "attr_batch_row"
KEY_BATCH_KEEP = "attr_batch_keep"

TARGET_KINDS = {
    "top": "The model's top next token",
    "token": "A next token I name",
    "continuation": "A continuation (several tokens)",
    "contrast": "One token versus another (logit difference)",
}
PLOT_CONFIG = {"displaylogo": False}


def title_of(name: str) -> str:
    return METHODS[name].title


def sidebar_settings() -> tuple[dict[str, AttributionMethod], int, int]:
    """Every method with the options set in the sidebar (one widget per option), the budget and the seed."""
    values: dict[str, int] = {}
    with st.sidebar.expander("Attribution settings", expanded=False):
        for method in METHODS.values():
            for option in method.options():
                if option.name not in values:
                    key = KEY_OPTION_PREFIX + option.name
                    values[option.name] = int(st.number_input(option.label, option.low, option.high, option.default,
                                                              step=option.step, key=key))  # fmt: skip
        budget = st.number_input(
            "Budget per run (model evaluations)", 10, 100_000, AttributionRun.default("budget"), step=500, key=KEY_BUDGET
        )
        seed = st.number_input("Seed", 0, 2**31 - 1, AttributionRun.default("seed"), key=KEY_SEED)
    methods = {name: method(**{o.name: values[o.name] for o in method.options()}) for name, method in METHODS.items()}
    return methods, int(budget), int(seed)


def target_widgets() -> Target:
    left, right = st.columns(2)
    with left:
        kind = st.radio("Explain", list(TARGET_KINDS), format_func=TARGET_KINDS.get, key=KEY_TARGET_KIND)
    with right:
        if kind == "token":
            return Target.next_token(st.text_input("Next token (one token; mind the leading space)", " Mary", key=KEY_TOKEN))
        if kind == "continuation":
            return Target.continuation(st.text_input("Continuation", " Mary. She thanked him", key=KEY_CONTINUATION) or " ")
        if kind == "contrast":
            return Target.contrast(
                st.text_input("Token", " Mary", key=KEY_TOKEN), st.text_input("versus", " John", key=KEY_OTHER)
            )
    return Target.next_token()


def one_prompt_section(model, methods: dict[str, AttributionMethod], budget: int, seed: int) -> None:
    """One prompt, the chosen methods side by side; the results stay on screen until the next Run."""
    prompt = st.text_area("Prompt", "When Mary and John went to the store, John gave a drink to", key=KEY_PROMPT, height=80)
    warn_unknown_text(model, prompt)
    target = target_widgets()
    chosen = st.multiselect(
        "Methods", list(METHODS), default=list(COMPARED_BY_DEFAULT), format_func=title_of, key=KEY_METHODS,
    )  # fmt: skip
    with shown_as_message("Estimating the cost"):
        ids = tokenize(model, prompt)
        per_row = measured_seconds_per_evaluation(model, ids)
        picked = [methods[m] for m in chosen]
        st.dataframe(cost_frame(picked, len(ids), budget, seconds_per_evaluation=per_row), hide_index=True)
        show_estimate(attribution_cost(picked, len(ids), per_row), "fewer steps, samples or methods shorten it")
    if st.button("Run attribution", type="primary", key=KEY_RUN, disabled=not chosen):
        with shown_as_message("The settings"):
            st.session_state[KEY_COMPARISON] = MethodComparison(prompt, tuple(methods[m] for m in chosen), target, budget, seed)
    spec = st.session_state.get(KEY_COMPARISON)
    if spec is None:
        return
    runs = spec.runs()
    results = []
    bar = st.progress(0.0, text="Starting")
    for i, one in enumerate(runs):  # one cached run per method: adding a method computes only that one
        bar.progress(i / len(runs), text=f"{one.method.title} ({i + 1} of {len(runs)})")
        with shown_as_message(one.method.title):
            results.append(cached_run(model, one))
    bar.empty()
    if results:
        comparison = AttributionComparison(tuple(results))
        show_comparison(comparison)
        if len(results) == len(runs):  # only a complete result is what the spec replays to
            if len(runs) == 1:
                keep_run(model, runs[0], results[0], key=KEY_KEEP, label=runs[0].method.title)
            else:
                keep_run(model, spec, comparison, key=KEY_KEEP, label="these methods compared")


def show_comparison(comparison: AttributionComparison) -> None:
    results = comparison.attributions
    first = results[0]
    st.markdown(f"**Target:** {md_escape(first.target.label)} = **{first.target_value:.4f}** on the full prompt")
    st.subheader("Token scores, side by side")
    st.caption("Purple: the token raises the target; orange: it lowers it. Each method is scaled to its own largest score.")
    for column, result in zip(st.columns(len(results)), results, strict=True):
        with column:
            st.markdown(f"**{result.title}**")
            token_chips(list(result.tokens), weights=list(normalised(result.scores)), titles=[f"{s:+.4f}" for s in result.scores])
    for result in results:
        if (warning := result.convergence_warning()) is not None:
            st.warning(md_escape(warning))
    st.plotly_chart(method_comparison(results), config=PLOT_CONFIG)
    st.subheader("Which method is faithful here?")
    st.plotly_chart(faithfulness_curves(comparison.curves, target=first.target), config=PLOT_CONFIG)
    st.dataframe(comparison_frame(comparison), hide_index=True)
    st.caption(
        "Comprehensiveness: mean drop of the target as the top-scored tokens are removed (AOPC). "
        "Sufficiency: mean gap left when only the top tokens are kept. "
        "A large IG convergence delta means its scores do not yet add up: give it more steps."
    )
    items = [
        BatchItem(0, r.method, r, c.comprehensiveness, c.sufficiency) for r, c in zip(results, comparison.curves, strict=True)
    ]
    csv_download(lambda: batch_frame(items), "attribution.csv", "Download scores (CSV)")
    json_download(lambda: batch_json(items), "attribution.json", "Download scores (JSON)")


def upload_section(model) -> PromptFile | None:
    """The uploaded file, read and checked, with its skipped rows listed (or None)."""
    st.markdown(
        f"Upload **CSV, TSV, TXT** (one prompt per line) or **JSONL** with a `prompt` column and, optionally, `target` "
        f"(a next token) or `continuation`. Up to {MAX_ROWS} prompts of up to {MAX_PROMPT_TOKENS} tokens."
    )
    upload = st.file_uploader("Prompt file", type=["csv", "tsv", "txt", "jsonl"], key=KEY_UPLOAD)
    if upload is None:
        return None
    prompt_file = None
    with shown_as_message(f"Reading {upload.name}"):
        prompt_file = read_prompt_file(upload.name, upload.getvalue(), count_tokens=lambda p: len(tokenize(model, p)))
    if prompt_file is None:
        return None
    st.success(md_escape(prompt_file.summary()))
    if prompt_file.skipped:
        st.warning("Rows skipped (nothing else was dropped):")
        st.dataframe(pd.DataFrame([{"line": s.line, "reason": s.reason} for s in prompt_file.skipped]), hide_index=True)
    rows = [{"line": r.line, "prompt": r.prompt, "target": r.target, "continuation": r.continuation} for r in prompt_file.rows]
    st.dataframe(pd.DataFrame(rows), hide_index=True, height=180)
    return prompt_file


def batch_section(model, prompt_file: PromptFile, methods: dict[str, AttributionMethod], budget: int, seed: int) -> None:
    """Every prompt of the file by the chosen methods: progress, Stop (keeps what is done), results, downloads."""
    chosen = st.multiselect(
        "Methods", list(METHODS), default=["feature_ablation", "shap"], format_func=title_of, key=KEY_BATCH_METHODS
    )
    longest_ids = max((tokenize(model, r.prompt) for r in prompt_file.rows), key=len)
    longest, prompts = len(longest_ids), len(prompt_file.rows)
    per_row = measured_seconds_per_evaluation(model, longest_ids)
    picked = [methods[m] for m in chosen]
    st.dataframe(cost_frame(picked, longest, budget, prompts=prompts, seconds_per_evaluation=per_row), hide_index=True)
    st.caption("Estimates are upper bounds for the longest prompt, times the number of prompts.")
    show_estimate(attribution_cost(picked, longest, per_row, prompts=prompts), "fewer prompts or methods shorten it")
    run_col, stop_col = st.columns([1, 4])
    start = run_col.button("Run batch", type="primary", key=KEY_BATCH_RUN, disabled=not chosen)
    stop_col.button("Stop", key=KEY_BATCH_STOP, help="Stops after the current prompt; the rows already done are kept.")
    state = st.session_state.setdefault(KEY_BATCH_STATE, {"items": [], "running": False, "spec": None, "result": None})
    if state["running"] and not start:
        state.update(running=False, stopped=True)  # the previous run was interrupted (Stop, or any other click)
    if start:
        with shown_as_message("The batch"):
            spec = BatchAttribution(prompt_file.rows, tuple(methods[m] for m in chosen), budget, seed)
            state.update(items=[], running=True, stopped=False, spec=spec, result=None)
            bar = st.progress(0.0, text="Starting the batch")
            state["result"] = spec.run(model, lambda fraction, text: bar.progress(fraction, text=text),
                                       on_item=state["items"].append)  # fmt: skip
            bar.empty()
        state["running"] = False
    if state["items"]:
        show_batch(state["items"], state["spec"].total, bool(state.get("stopped")))
        result: BatchResult | None = state["result"]
        if result is not None and not result.stopped:
            keep_run(model, state["spec"], result, key=KEY_BATCH_KEEP, label="this batch")


def show_batch(items: list[BatchItem], total: int, stopped: bool) -> None:
    done = len([i for i in items if i.attribution is not None])
    st.info(f"{done} of {total} runs done" + (" — stopped early; the rows below are kept" if stopped else ""))
    for failure in (i for i in items if i.error):
        st.warning(f"Line {failure.line}, {title_of(failure.method)}: {md_escape(failure.error)}")
    st.dataframe(batch_frame(items).drop(columns=["tokens", "scores"], errors="ignore"), hide_index=True)
    completed = [i for i in items if i.attribution is not None]
    if completed:
        labels = [f"line {i.line} · {i.attribution.title}" for i in completed]
        chosen = st.selectbox(
            "Show one prompt's token scores", range(len(completed)), format_func=labels.__getitem__, key=KEY_BATCH_ROW
        )
        picked = completed[chosen].attribution
        token_chips(list(picked.tokens), weights=list(normalised(picked.scores)), titles=[f"{s:+.4f}" for s in picked.scores])
        st.caption(f"Target: {md_escape(picked.target.label)} = {picked.target_value:.4f}")
        drivers = driving_tokens(completed)
        titles = drivers["method"].unique()
        for column, method_title in zip(st.columns(len(titles)), titles, strict=True):
            column.plotly_chart(driving_tokens_bar(drivers, method_title), config=PLOT_CONFIG)
        st.dataframe(mean_faithfulness(completed), hide_index=True)
    csv_download(lambda: batch_frame(items), "attribution_batch.csv", "Download results (CSV)")
    json_download(lambda: batch_json(items), "attribution_batch.json", "Download results (JSON)")


st.title("Attribution")
st.caption(
    "Which input tokens made the model say this? Compare SHAP and Captum's methods on the same target, "
    "see what each costs, and check which one is faithful on your prompt."
)
model = require_model()
method_settings, run_budget, run_seed = sidebar_settings()
one_tab, batch_tab = st.tabs(["One prompt", "A file of prompts"])
with one_tab:
    one_prompt_section(model, method_settings, run_budget, run_seed)
with batch_tab:
    uploaded = upload_section(model)
    if uploaded is not None:
        batch_section(model, uploaded, method_settings, run_budget, run_seed)
