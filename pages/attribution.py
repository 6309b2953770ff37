"""Attribution: which input tokens made the model say this? Several methods side by side, with a faithfulness check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from interp.attribution import (
    DEFAULT_BUDGET,
    DEFAULT_SETTINGS,
    METHOD_TITLES,
    METHODS,
    Target,
    estimate_evaluations,
    faithfulness_evaluations,
)
from interp.attribution_batch import BatchItem, batch_frame, batch_json, driving_tokens, mean_faithfulness, run_attribution_batch
from interp.errors import SteerscopeError
from interp.plots.attribution import driving_tokens_bar, faithfulness_curves, method_comparison, normalised
from interp.prompt_files import MAX_PROMPT_TOKENS, MAX_ROWS, read_prompt_file
from interp.records import Bundle
from interp.tokens import tokenize
from ui.cached import cached_attribution
from ui.errors import shown_as_message
from ui.downloads import csv_download, json_download
from ui.model import require_model
from ui.records import keep_run
from ui.render import md_escape, token_chips

KEY_PROMPT = "attr_prompt"
KEY_TARGET_KIND = "attr_target_kind"
KEY_TOKEN = "attr_token"
KEY_OTHER = "attr_other"
KEY_CONTINUATION = "attr_continuation"
KEY_METHODS = "attr_methods"
KEY_BUDGET = "attr_budget"
KEY_SEED = "attr_seed"
KEY_MAX_EVALS = "attr_max_evals"
KEY_STEPS = "attr_n_steps"
KEY_SAMPLES = "attr_n_samples"
KEY_RUN = "attr_run"
KEY_UPLOAD = "attr_upload"
KEY_BATCH_METHODS = "attr_batch_methods"
KEY_BATCH_RUN = "attr_batch_run"
KEY_BATCH_STOP = "attr_batch_stop"
KEY_BATCH_STATE = "attr_batch_state"
KEY_BATCH_ROW = "attr_batch_row"

TARGET_KINDS = {
    "top": "The model's top next token",
    "token": "A next token I name",
    "continuation": "A continuation (several tokens)",
    "contrast": "One token versus another (logit difference)",
}

st.title("Attribution")
st.caption(
    "Which input tokens made the model say this? Compare SHAP and Captum's methods on the same target, "
    "see what each costs, and check which one is faithful on your prompt."
)
model = require_model()
info = model.info

with st.sidebar.expander("Attribution settings", expanded=False):
    max_evals = st.number_input(
        "SHAP: max evaluations", 20, 5000, DEFAULT_SETTINGS["shap"]["max_evals"], step=20, key=KEY_MAX_EVALS
    )
    n_steps = st.number_input(
        "Integrated Gradients: steps", 4, 1024, DEFAULT_SETTINGS["integrated_gradients"]["n_steps"], step=4, key=KEY_STEPS
    )
    n_samples = st.number_input(
        "Shapley sampling: permutations", 1, 200, DEFAULT_SETTINGS["shapley_sampling"]["n_samples"], key=KEY_SAMPLES
    )
    budget = st.number_input("Budget per run (model evaluations)", 10, 100_000, DEFAULT_BUDGET, step=500, key=KEY_BUDGET)
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=KEY_SEED)
settings = {
    "shap": {"max_evals": int(max_evals)},
    "integrated_gradients": {"n_steps": int(n_steps)},
    "feature_ablation": {},
    "shapley_sampling": {"n_samples": int(n_samples)},
    "gradient_x_input": {},
}


def cost_table(n_tokens: int, methods: list[str], prompts: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": METHOD_TITLES[m],
                "model evaluations (estimate)": estimate_evaluations(m, n_tokens, settings[m]) * prompts,
                # The page checks every result's faithfulness too: that is part of what the user waits for.
                "+ faithfulness check": faithfulness_evaluations(n_tokens) * prompts,
                "within budget": "yes" if estimate_evaluations(m, n_tokens, settings[m]) <= budget else "NO: raise the budget",
            }
            for m in methods
        ]
    )


one_tab, batch_tab = st.tabs(["One prompt", "A file of prompts"])

with one_tab:
    prompt = st.text_area("Prompt", "When Mary and John went to the store, John gave a drink to", key=KEY_PROMPT, height=80)
    left, right = st.columns(2)
    with left:
        kind = st.radio("Explain", list(TARGET_KINDS), format_func=TARGET_KINDS.get, key=KEY_TARGET_KIND)
    with right:
        if kind == "token":
            token = st.text_input("Next token (one token; mind the leading space)", " Mary", key=KEY_TOKEN)
            target = Target.next_token(token)
        elif kind == "continuation":
            target = Target.continuation(st.text_input("Continuation", " Mary. She thanked him", key=KEY_CONTINUATION) or " ")
        elif kind == "contrast":
            target = Target.contrast(
                st.text_input("Token", " Mary", key=KEY_TOKEN), st.text_input("versus", " John", key=KEY_OTHER)
            )
        else:
            target = Target.next_token()
    methods = st.multiselect(
        "Methods",
        METHODS,
        default=["shap", "feature_ablation", "integrated_gradients"],
        format_func=METHOD_TITLES.get,
        key=KEY_METHODS,
    )
    with shown_as_message("Estimating the cost"):
        n_tokens = len(tokenize(model, prompt))
        st.dataframe(cost_table(n_tokens, methods), hide_index=True)
    if st.button("Run attribution", type="primary", key=KEY_RUN, disabled=not methods) or st.session_state.get("attr_has_run"):
        st.session_state["attr_has_run"] = True
        results, curves = [], []
        bar = st.progress(0.0, text="Starting")
        for i, method in enumerate(methods):
            bar.progress(i / len(methods), text=f"{METHOD_TITLES[method]} ({i + 1} of {len(methods)})")
            with shown_as_message(METHOD_TITLES[method]):
                options = tuple(sorted(settings[method].items()))
                result, curve = cached_attribution(
                    model, info.weights_sha256, prompt, target, method, options, int(budget), int(seed)
                )
                results.append(result)
                curves.append(curve)
        bar.empty()
        if results:
            first = results[0]
            st.markdown(f"**Target:** {md_escape(first.target.label)} = **{first.target_value:.4f}** on the full prompt")
            st.subheader("Token scores, side by side")
            st.caption(
                "Purple: the token raises the target; orange: it lowers it. Each method is scaled to its own largest score."
            )
            chip_cols = st.columns(len(results))
            for column, result in zip(chip_cols, results, strict=True):
                with column:
                    st.markdown(f"**{result.title}**")
                    token_chips(
                        list(result.tokens),
                        weights=list(normalised(result.scores)),
                        titles=[f"{s:+.4f}" for s in result.scores],
                    )
            st.plotly_chart(method_comparison(results), config={"displaylogo": False})
            st.subheader("Which method is faithful here?")
            st.plotly_chart(faithfulness_curves(curves), config={"displaylogo": False})
            summary = pd.DataFrame(
                [
                    {
                        "method": r.title,
                        "comprehensiveness (higher = better)": round(c.comprehensiveness, 4),
                        "sufficiency (lower = better)": round(c.sufficiency, 4),
                        "model evaluations": r.n_evaluations,
                        "time (s)": round(r.seconds, 2),
                        "IG convergence delta": None if r.convergence_delta is None else round(r.convergence_delta, 4),
                    }
                    for r, c in zip(results, curves, strict=True)
                ]
            )
            st.dataframe(summary, hide_index=True)
            st.caption(
                "Comprehensiveness: mean drop of the target as the top-scored tokens are removed (AOPC). "
                "Sufficiency: mean gap left when only the top tokens are kept. "
                "A large IG convergence delta means its scores do not yet add up: give it more steps."
            )
            batch_items = [
                BatchItem(0, r.method, r, c.comprehensiveness, c.sufficiency) for r, c in zip(results, curves, strict=True)
            ]
            csv_download(lambda: batch_frame(batch_items), "attribution.csv", "Download scores (CSV)")
            json_download(lambda: batch_json(batch_items), "attribution.json", "Download scores (JSON)")
            kept = Bundle({r.method: Bundle({"attribution": r, "faithfulness": c}) for r, c in zip(results, curves, strict=True)})
            target_fields = {"kind": target.kind, "token": target.token, "text": target.text, "other": target.other}
            run_settings = {
                "methods": [r.method for r in results],
                "options": {r.method: settings[r.method] for r in results},
                "budget": int(budget),
            }
            keep_run(
                model,
                "attribution_comparison",
                {"prompt": prompt, "target": target_fields},
                run_settings,
                kept,
                key="attr_keep",
                seed=int(seed),
            )

with batch_tab:
    st.markdown(
        f"Upload **CSV, TSV, TXT** (one prompt per line) or **JSONL** with a `prompt` column and, optionally, `target` "
        f"(a next token) or `continuation`. Up to {MAX_ROWS} prompts of up to {MAX_PROMPT_TOKENS} tokens."
    )
    upload = st.file_uploader("Prompt file", type=["csv", "tsv", "txt", "jsonl"], key=KEY_UPLOAD)
    prompt_file = None
    if upload is not None:
        try:
            prompt_file = read_prompt_file(upload.name, upload.getvalue(), count_tokens=lambda p: len(tokenize(model, p)))
        except SteerscopeError as exc:
            st.error(str(exc))
    if prompt_file is not None:
        st.success(md_escape(prompt_file.summary()))
        if prompt_file.skipped:
            st.warning("Rows skipped (nothing else was dropped):")
            st.dataframe(pd.DataFrame([{"line": s.line, "reason": s.reason} for s in prompt_file.skipped]), hide_index=True)
        st.dataframe(
            pd.DataFrame(
                [
                    {"line": r.line, "prompt": r.prompt, "target": r.target, "continuation": r.continuation}
                    for r in prompt_file.rows
                ]
            ),
            hide_index=True,
            height=180,
        )
        batch_methods = st.multiselect(
            "Methods", METHODS, default=["feature_ablation", "shap"], format_func=METHOD_TITLES.get, key=KEY_BATCH_METHODS
        )
        longest = max(len(tokenize(model, r.prompt)) for r in prompt_file.rows)
        st.dataframe(cost_table(longest, batch_methods, prompts=len(prompt_file.rows)), hide_index=True)
        st.caption("Estimates are upper bounds for the longest prompt, times the number of prompts.")
        run_col, stop_col = st.columns([1, 4])
        start = run_col.button("Run batch", type="primary", key=KEY_BATCH_RUN, disabled=not batch_methods)
        stop_col.button("Stop", key=KEY_BATCH_STOP, help="Stops after the current prompt; the rows already done are kept.")
        state = st.session_state.setdefault(KEY_BATCH_STATE, {"items": [], "total": 0, "running": False, "file": None})
        if state["running"] and not start:
            state["running"] = False  # the previous run was interrupted (Stop, or any other click)
            state["stopped"] = True
        if start:
            state.update(
                items=[], total=len(prompt_file.rows) * len(batch_methods), running=True, stopped=False, file=prompt_file.name
            )
            bar = st.progress(0.0, text="Starting the batch")
            with shown_as_message("The batch"):
                run_attribution_batch(
                    model,
                    prompt_file,
                    batch_methods,
                    settings=settings,
                    budget=int(budget),
                    seed=int(seed),
                    on_item=state["items"].append,
                    on_progress=lambda p: bar.progress(p.fraction, text=p.describe()),
                )
            state["running"] = False
            bar.empty()
        items = state["items"]
        if items:
            done = len([i for i in items if i.attribution is not None])
            note = f"{done} of {state['total']} runs done"
            if state.get("stopped"):
                note += " — stopped early; the rows below are kept"
            st.info(note)
            failures = [i for i in items if i.error]
            for failure in failures:
                st.warning(f"Line {failure.line}, {METHOD_TITLES[failure.method]}: {md_escape(failure.error)}")
            frame = batch_frame(items)
            st.dataframe(frame.drop(columns=["tokens", "scores"], errors="ignore"), hide_index=True)
            completed = [i for i in items if i.attribution is not None]
            if completed:
                labels = [f"line {i.line} · {i.attribution.title}" for i in completed]
                chosen = st.selectbox(
                    "Show one prompt's token scores", range(len(completed)), format_func=labels.__getitem__, key=KEY_BATCH_ROW
                )
                picked = completed[chosen].attribution
                token_chips(
                    list(picked.tokens), weights=list(normalised(picked.scores)), titles=[f"{s:+.4f}" for s in picked.scores]
                )
                st.caption(f"Target: {md_escape(picked.target.label)} = {picked.target_value:.4f}")
                drivers = driving_tokens(completed)
                chart_cols = st.columns(len(drivers["method"].unique()))
                for column, method_title in zip(chart_cols, drivers["method"].unique(), strict=True):
                    column.plotly_chart(driving_tokens_bar(drivers, method_title), config={"displaylogo": False})
                st.dataframe(mean_faithfulness(completed), hide_index=True)
            csv_download(lambda: batch_frame(items), "attribution_batch.csv", "Download results (CSV)")
            json_download(lambda: batch_json(items), "attribution_batch.json", "Download results (JSON)")
