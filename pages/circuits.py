"""Circuits: which components cause this behaviour? Patching, attribution patching, ablation, DLA."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st
from scipy.stats import spearmanr

from interp.attention import attention_patterns
from interp.circuit_presets import (
    METRIC_TITLES,
    PRESET_TITLES,
    aligned_task,
    custom_task,
    metric_choices,
    preset_task,
    reference_batch,
    with_metric,
)
from interp.circuits import (
    ABLATIONS,
    SITE_TITLES,
    Component,
    ablatable_components,
    ablate,
    attribution_patch,
    circuit_faithfulness,
    direct_logit_attribution,
    patch_sweep,
)
from interp.errors import SteerscopeError
from interp.plots.attention import pattern_heatmap
from interp.plots.circuits import dla_bar, patching_agreement, patching_heatmap
from interp.records import Bundle
from interp.toy import induction as toy
from ui.errors import shown_as_message
from ui.downloads import csv_download
from ui.model import KEY_CHOICE, KEY_CUSTOM, OTHER_CHOICE, require_model
from ui.records import keep_run
from ui.render import md_escape

KEY_TASK = "circ_task"
KEY_METRIC = "circ_metric"
KEY_CLEAN = "circ_clean"
KEY_CORRUPTED = "circ_corrupted"
KEY_ANSWER = "circ_answer"
KEY_WRONG = "circ_wrong"
KEY_ALIGN = "circ_align"
KEY_KIND = "circ_kind"
KEY_DIRECTION = "circ_direction"
KEY_RUN = "circ_run"
KEY_RESULTS = "circ_results"
KEY_HEADMAP = "circ_headmap"
KEY_OPEN_HEAD = "circ_open_head"
KEY_ABLATE = "circ_ablate"
KEY_ABLATION = "circ_ablation_method"
KEY_ABLATE_RUN = "circ_ablate_run"
TASKS = {**PRESET_TITLES, "custom": "My own clean / corrupted pair"}
PLANTED_HELP = (
    "A 2-layer attention-only model trained here whose circuit is known by construction: "
    "L0.H1 (previous token) and L1.H2 (induction)."
)


def _use_planted_model() -> None:
    st.session_state[KEY_CHOICE] = OTHER_CHOICE
    st.session_state[KEY_CUSTOM] = str(toy.SHIPPED)
    st.session_state[KEY_TASK] = "induction"


def _open_clicked_head(n_heads: int) -> None:
    points = [p for p in st.session_state[KEY_HEADMAP].selection.points if "point_index" in p]
    if points:
        st.session_state[KEY_OPEN_HEAD] = divmod(int(points[0]["point_index"]), n_heads)


st.title("Circuits")
st.caption(
    "Which components cause this behaviour? Patch activations between a clean and a corrupted prompt, "
    "compare with the fast attribution-patching estimate, ablate candidate circuits, and read direct logit attribution."
)
model = require_model()
info = model.info
st.button(
    "Use the model with a planted induction circuit",
    on_click=_use_planted_model,
    help=PLANTED_HELP,
)

task_name = st.radio("Task", list(TASKS), format_func=TASKS.get, horizontal=True, key=KEY_TASK)
task = None
with shown_as_message("Building the prompts"):
    if task_name == "custom":
        left, right = st.columns(2)
        clean_text = left.text_input("Clean prompt", "When Mary and John went to the store, John gave a drink to", key=KEY_CLEAN)
        corrupted_text = right.text_input(
            "Corrupted prompt", "When Mary and John went to the store, Mary gave a drink to", key=KEY_CORRUPTED
        )
        answer = left.text_input("Right answer (one token)", " Mary", key=KEY_ANSWER)
        wrong = right.text_input("Wrong answer (one token)", " John", key=KEY_WRONG)
        try:
            task = custom_task(model, clean_text, corrupted_text, answer, wrong)
        except SteerscopeError as exc:
            st.warning(str(exc))
            if "token by token" in str(exc) and st.checkbox("Align them (pad the shorter prompt at the start)", key=KEY_ALIGN):
                task = aligned_task(model, clean_text, corrupted_text, answer, wrong)
    else:
        task = preset_task(model, task_name)
if task is None:
    st.stop()
choices = metric_choices(task)
if st.session_state.get(KEY_METRIC) not in choices:  # another task was chosen: start from its own metric
    st.session_state[KEY_METRIC] = choices[0]
metric_kind = st.radio("Metric", choices, format_func=METRIC_TITLES.get, horizontal=True, key=KEY_METRIC)
task = with_metric(task, metric_kind)

with st.expander(f"Prompts: {task.clean.shape[0]} clean / corrupted pair(s), {task.clean.shape[1]} tokens each"):
    st.dataframe(pd.DataFrame({"clean": task.clean_text, "corrupted": task.corrupted_text}), hide_index=True)
    st.caption(f"Metric: {md_escape(task.metric.label)}" + ("" if task.metric.higher_is_better else " (lower is better)"))

controls = st.columns([2, 2, 1])
kind = controls[0].selectbox("Sweep", list(SITE_TITLES), format_func=SITE_TITLES.get, key=KEY_KIND)
direction = controls[1].radio(
    "Direction",
    ["denoise", "noise"],
    format_func={"denoise": "Clean into corrupted (denoise)", "noise": "Corrupted into clean (noise)"}.get,
    horizontal=True,
    key=KEY_DIRECTION,
)
results = st.session_state.setdefault(KEY_RESULTS, {})
key = (info.weights_sha256, task_name, task.clean_text, task.corrupted_text, metric_kind, kind, direction)
if controls[2].button("Run sweep", type="primary", key=KEY_RUN):
    with shown_as_message("The patching sweep"):
        bar = st.progress(0.0, text="Activation patching")
        exact = patch_sweep(
            model, task.clean, task.corrupted, task.metric, kind, direction=direction,
            progress=lambda f: bar.progress(0.9 * f, text=f"Activation patching: {100 * f:.0f}% of sites"),
        )  # fmt: skip
        bar.progress(0.92, text="Attribution patching (2 forward + 1 backward)")
        estimate = attribution_patch(model, task.clean, task.corrupted, task.metric, kind, direction=direction)
        bar.empty()
        results[key] = (exact, estimate)
        if kind == "heads" and exact.comparable:  # preselect the strongest heads for the ablation below
            st.session_state[KEY_ABLATE] = [label.replace(" ", ".") for label, _ in exact.ranked(2)]

if key in results:
    exact, estimate = results[key]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Clean metric", f"{exact.metric_clean:.3f} {task.metric.unit}")
    m2.metric("Corrupted metric", f"{exact.metric_corrupted:.3f} {task.metric.unit}")
    m3.metric("Activation patching", f"{exact.seconds:.1f} s", f"{exact.forward_rows} forward rows", delta_color="off")
    m4.metric("Attribution patching", f"{estimate.seconds:.2f} s", f"{estimate.forward_rows} forward rows", delta_color="off")
    if not exact.comparable:
        st.warning(
            "The clean and corrupted prompts give the same metric, so scores cannot be normalised. "
            "Choose a corrupted prompt that changes the answer."
        )
    else:
        heat_col, est_col = st.columns(2)
        with heat_col:
            chart = patching_heatmap(exact, task.position_labels, title="Activation patching (exact)")
            if kind == "heads":
                st.plotly_chart(
                    chart, key=KEY_HEADMAP, on_select=functools.partial(_open_clicked_head, info.n_heads), selection_mode="points"
                )
            else:
                st.plotly_chart(chart)
        with est_col:
            st.plotly_chart(patching_heatmap(estimate, task.position_labels, title="Attribution patching (estimate)"))
        correlation = float(spearmanr(exact.values.ravel(), estimate.values.ravel()).statistic)
        table_col, scatter_col = st.columns([2, 3])
        with table_col:
            st.markdown("**Top components** (activation patching)")
            ranked = pd.DataFrame(exact.ranked(12), columns=["component", "score"])
            st.dataframe(ranked, hide_index=True)
            st.caption(
                "Denoise: 1 = this component alone restores the clean answer. "
                "Noise: near 0 = corrupting it alone breaks the answer."
            )
            csv_download(lambda: pd.concat([exact.to_frame(), estimate.to_frame()]), "patching.csv", "Download both sweeps (CSV)")
            if task_name != "custom" or task.name == "custom":
                task_inputs = {"task": task_name}
                if task_name == "custom":
                    task_inputs |= {"clean": clean_text, "corrupted": corrupted_text, "answer": answer, "wrong": wrong}
                bundle = Bundle({"activation": exact, "attribution": estimate})
                settings = {"kind": kind, "direction": direction, "metric": metric_kind}
                keep_run(model, "patching", task_inputs, settings, bundle, key="circ_keep")
        with scatter_col:
            st.plotly_chart(patching_agreement(exact, estimate, correlation))
            st.caption(
                "Attribution patching is a first-order estimate: "
                "where attention saturates it can miss a component the real patch shows."
            )

if kind == "heads" and KEY_OPEN_HEAD in st.session_state:
    layer, head = st.session_state[KEY_OPEN_HEAD]
    with shown_as_message("Recording the head's pattern"):
        pattern = attention_patterns(model, task.clean[0].tolist())
        st.plotly_chart(pattern_heatmap(pattern, layer, head))

st.subheader("Ablate a set of components together")
chosen = st.multiselect(
    "Heads, attention outputs or MLP outputs",
    [c.label for c in ablatable_components(model)],
    format_func=lambda label: label.replace(" attn_out", " attention output").replace(" mlp_out", " MLP output"),
    key=KEY_ABLATE,
)
method = st.radio(
    "Replace with",
    ABLATIONS,
    horizontal=True,
    key=KEY_ABLATION,
    format_func={
        "zero": "zero",
        "mean": f"mean over a reference batch ({2 * task.clean.shape[0]} prompts: the clean and corrupted ones)",
        "resample": "the corrupted run's value",
    }.get,
)
if st.button("Ablate", key=KEY_ABLATE_RUN, disabled=not chosen):
    components = [Component.from_label(label) for label in chosen]
    heads = [c for c in components if c.kind == "head"]
    with shown_as_message("Ablation"):
        options = {"method": method, "reference": reference_batch(task), "corrupted": task.corrupted}
        together = ablate(model, task.clean, components, task.metric, **options)
        a, b, c = st.columns(3)
        a.metric("Full model", f"{together.metric_full:.3f}")
        b.metric("These components ablated", f"{together.metric_ablated:.3f}", f"{together.change:+.3f}", delta_color="off")
        if heads:  # faithfulness is about heads: keep only the chosen ones, ablate every other head
            full, kept, none = circuit_faithfulness(model, task.clean, heads, task.metric, **options)
            c.metric("Only the chosen heads kept", f"{kept:.3f}", f"all heads ablated: {none:.3f}", delta_color="off")
            span = full - none
            if abs(span) > 1e-9:
                st.caption(
                    f"Keeping only the chosen heads preserves {100 * (kept - none) / span:.0f}% of the full model's metric "
                    "(faithfulness of the set)."
                )

if task.metric.kind != "repeated_loss":
    st.subheader("Direct logit attribution")
    with shown_as_message("Direct logit attribution"):
        dla = direct_logit_attribution(model, task.clean, task.metric)
        st.plotly_chart(dla_bar(dla))
        st.caption(
            f"Each component's direct effect on {md_escape(dla.metric_label)} through the final norm (its scale frozen) and the "
            f"unembedding; all of them plus the bias terms sum to {dla.total:.3f} (metric {dla.metric:.3f}). "
            "Indirect effects — a head that works by steering later heads — show in patching, not here."
        )
else:
    st.caption("Direct logit attribution explains a logit at one position; the induction metric averages a loss over many.")
