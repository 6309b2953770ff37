"""Circuits: which components cause this behaviour, and how they connect? Patching, ablation, DLA, edge circuits."""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pandas as pd
import streamlit as st

from interp.attention import attention_patterns
from interp.circuits import (
    ABLATIONS,
    EDGE_METHOD_TITLES,
    EDGE_METHODS,
    SITE_TITLES,
    AblationRun,
    CircuitAblation,
    CircuitTask,
    Component,
    DirectLogitAttributionRun,
    EdgeCircuitResult,
    EdgeCircuitRun,
    EdgePatchRun,
    PatchingPair,
    PatchingRun,
    PatchingTask,
    ablatable_components,
    top_circuit,
)
from interp.circuits import tasks as presets
from interp.circuits.edges import circuit_document
from interp.errors import SteerscopeError
from interp.plots.attention import pattern_heatmap
from interp.plots.circuits import circuit_graph, dla_bar, faithfulness_plot, patching_agreement, patching_heatmap
from interp.toy import induction as toy
from ui.cached import cached_run
from ui.downloads import csv_download, figure_downloads, json_download
from ui.errors import shown_as_message
from ui.model import KEY_CHOICE, KEY_CUSTOM, OTHER_CHOICE, require_model
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, warn_unknown_text

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
KEY_PATCHING_SPEC = "circ_patching_spec"  # (weights, PatchingRun) of the sweep on screen
KEY_HEADMAP = "circ_headmap"
KEY_OPEN_HEAD = "circ_open_head"
KEY_ABLATE = "circ_ablate"
KEY_ABLATION = "circ_ablation_method"
KEY_ABLATE_RUN = "circ_ablate_run"
KEY_ABLATION_SPEC = "circ_ablation_spec"  # (weights, AblationRun) of the ablation on screen
KEY_EDGE_METHOD = "circ_edge_method"
KEY_EDGE_STEPS = "circ_edge_steps"
KEY_EDGE_RUN = "circ_edge_run"
KEY_EDGE_SPEC = "circ_edge_spec"  # (weights, EdgeCircuitRun) of the edge circuit on screen
KEY_EDGE_SIZE = "circ_edge_size"
KEY_EDGE_BY = "circ_edge_by"
KEY_EDGE_THRESHOLD = "circ_edge_threshold"
KEY_EDGE_GRAPH = "circ_edge_graph"
KEY_EDGE_HEAD = "circ_edge_head"  # (layer, head) clicked in the circuit graph
KEY_EDGE_PICK = "circ_edge_pick"
KEY_EDGE_PATCH = "circ_edge_patch"
KEY_EDGE_PATCH_SPEC = "circ_edge_patch_spec"
EDGE_CHOICES = 60  # edges offered for real patching: the top ones by score
CUSTOM_INPUTS = ("Clean prompt", "Corrupted prompt", "Right answer", "Wrong answer")
TASKS = {**presets.PRESET_TITLES, "custom": "My own clean / corrupted pair"}
ALIGN = "Align them (pad the shorter prompt at the start)"
DIRECTIONS = {"denoise": "Clean into corrupted (denoise)", "noise": "Corrupted into clean (noise)"}
LOW_AGREEMENT = 0.5  # Spearman below which the page explains why the estimate disagrees with the exact patch
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


def _on_screen(key: str, model, spec) -> bool:
    """Whether ``spec`` is the run whose button was last clicked (on this model): its result stays on screen."""
    return spec is not None and st.session_state.get(key) == (model.info.weights_sha256, spec)


def task_section(model) -> tuple[CircuitTask, PatchingTask] | None:
    """The task (a preset or the user's pair) and its metric, built for this model's tokenizer."""
    name = st.radio("Task", list(TASKS), format_func=TASKS.get, horizontal=True, key=KEY_TASK)
    choice = built = None
    with shown_as_message("Building the prompts"):
        if name != "custom":
            choice = CircuitTask(name)
            built = choice.build(model)
        else:
            left, right = st.columns(2)
            texts = (
                left.text_input("Clean prompt", presets.CUSTOM_CLEAN, key=KEY_CLEAN),
                right.text_input("Corrupted prompt", presets.CUSTOM_CORRUPTED, key=KEY_CORRUPTED),
                left.text_input("Right answer (one token)", presets.CUSTOM_ANSWER, key=KEY_ANSWER),
                right.text_input("Wrong answer (one token)", presets.CUSTOM_WRONG, key=KEY_WRONG),
            )
            for what, text in zip(CUSTOM_INPUTS, texts, strict=True):
                warn_unknown_text(model, text, what)
            try:
                choice = CircuitTask.custom(*texts)
                built = choice.build(model)
            except SteerscopeError as exc:
                st.warning(md_escape(str(exc)))
                if "token by token" in str(exc) and st.checkbox(ALIGN, key=KEY_ALIGN):
                    choice = dataclasses.replace(choice, align=True)
                    built = choice.build(model)
    if built is None:
        return None
    choices = presets.metric_choices(built)
    if st.session_state.get(KEY_METRIC) not in choices:  # another task was chosen: start from its own metric
        st.session_state[KEY_METRIC] = choices[0]
    metric = st.radio("Metric", choices, format_func=presets.METRIC_TITLES.get, horizontal=True, key=KEY_METRIC)
    choice, built = dataclasses.replace(choice, metric=metric), presets.with_metric(built, metric)
    with st.expander(f"Prompts: {built.clean.shape[0]} clean / corrupted pair(s), {built.clean.shape[1]} tokens each"):
        st.dataframe(pd.DataFrame({"clean": built.clean_text, "corrupted": built.corrupted_text}), hide_index=True)
        lower = "" if built.metric.higher_is_better else " (lower is better)"
        st.caption(f"Metric: {md_escape(built.metric.label)}{lower}")
    return choice, built


def patching_section(model, choice: CircuitTask, built: PatchingTask) -> PatchingRun:
    """Activation patching of every site of one kind, with attribution patching's estimate beside it."""
    controls = st.columns([2, 2, 1])
    sites = controls[0].selectbox(
        "Sweep", list(SITE_TITLES), list(SITE_TITLES).index(PatchingRun.default("sites")), SITE_TITLES.get, key=KEY_KIND
    )
    direction = controls[1].radio(
        "Direction", list(DIRECTIONS), list(DIRECTIONS).index(PatchingRun.default("direction")), DIRECTIONS.get,
        horizontal=True, key=KEY_DIRECTION,
    )  # fmt: skip
    spec = PatchingRun(choice, sites, direction)
    clicked = controls[2].button("Run sweep", type="primary", key=KEY_RUN)
    if clicked:
        st.session_state[KEY_PATCHING_SPEC] = (model.info.weights_sha256, spec)
    if not _on_screen(KEY_PATCHING_SPEC, model, spec):
        return spec
    pair = None
    with shown_as_message("The patching sweep"):
        pair = run_with_progress(model, spec, "Activation patching, then attribution patching")
    if pair is None:
        return spec
    if clicked and sites == "heads" and pair.activation.comparable:  # preselect the strongest heads for the ablation below
        st.session_state[KEY_ABLATE] = [label for label, _ in pair.activation.ranked(2)]
    _show_patching(model, spec, built, pair)
    return spec


def _show_patching(model, spec: PatchingRun, built: PatchingTask, pair: PatchingPair) -> None:
    exact, estimate, unit = pair.activation, pair.attribution, built.metric.unit
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Clean metric", f"{exact.metric_clean:.3f} {unit}")
    m2.metric("Corrupted metric", f"{exact.metric_corrupted:.3f} {unit}")
    m3.metric("Activation patching", f"{exact.seconds:.1f} s", f"{exact.forward_rows} forward rows", delta_color="off")
    m4.metric("Attribution patching", f"{estimate.seconds:.2f} s", f"{estimate.forward_rows} forward rows", delta_color="off")
    if not exact.comparable:
        st.warning(
            "The clean and corrupted prompts give the same metric, so scores cannot be normalised. "
            "Choose a corrupted prompt that changes the answer."
        )
        return
    heat_col, est_col = st.columns(2)
    with heat_col:
        chart = patching_heatmap(exact, built.position_labels, title="Activation patching (exact)")
        if spec.sites == "heads":
            on_select = functools.partial(_open_clicked_head, model.info.n_heads)
            st.plotly_chart(chart, key=KEY_HEADMAP, on_select=on_select, selection_mode="points")
        else:
            st.plotly_chart(chart)
    with est_col:
        st.plotly_chart(patching_heatmap(estimate, built.position_labels, title="Attribution patching (estimate)"))
    table_col, scatter_col = st.columns([2, 3])
    with table_col:
        st.markdown("**Top components** (activation patching)")
        st.dataframe(pd.DataFrame(exact.ranked(12), columns=["component", "score"]), hide_index=True)
        st.caption(
            "Denoise: 1 = this component alone restores the clean answer. Noise: near 0 = corrupting it alone breaks the answer."
        )
        csv_download(lambda: pd.concat([exact.to_frame(), estimate.to_frame()]), "patching.csv", "Download both sweeps (CSV)")
        keep_run(model, spec, pair, key="circ_keep", label="patching sweep")
    with scatter_col:
        st.plotly_chart(patching_agreement(pair))
        st.caption(
            "Attribution patching is a first-order estimate: "
            "where attention saturates it can miss a component the real patch shows."
        )
        agreement = pair.correlation
        if not agreement >= LOW_AGREEMENT:  # nan (a constant sweep) is low too
            st.info(
                f"Low agreement here (Spearman {agreement:.2f}): the estimate is a gradient taken at one end of the "
                f"patch ({'the corrupted run' if spec.direction == 'denoise' else 'the clean run'}). Where attention is "
                "saturated — a head that puts almost all its weight on one token, as the planted induction head does — "
                "the softmax is flat there, so the gradient is near zero although the full patch moves the answer "
                "a lot; most other sites score near zero in both, so their ranks are noise. Trust the exact sweep "
                "(left) for the ranking; switching the direction moves the gradient to the other run."
            )


def _forget_what_this_model_lacks(model) -> None:
    """Drop a head or components chosen on another model that this one does not have (after a model switch)."""
    opened = st.session_state.get(KEY_OPEN_HEAD)
    if opened is not None and not (0 <= opened[0] < model.info.n_layers and 0 <= opened[1] < model.info.n_heads):
        del st.session_state[KEY_OPEN_HEAD]
    chosen = st.session_state.get(KEY_ABLATE)
    if chosen:
        labels = {c.label for c in ablatable_components(model)}
        st.session_state[KEY_ABLATE] = [label for label in chosen if label in labels]


def open_head_section(model, built: PatchingTask) -> None:
    """The attention pattern of the head clicked in the head-patching heatmap."""
    layer, head = st.session_state[KEY_OPEN_HEAD]
    with shown_as_message("Recording the head's pattern"):
        pattern = attention_patterns(model, built.clean[0].tolist())
        st.plotly_chart(pattern_heatmap(pattern, layer, head))


def ablation_section(model, choice: CircuitTask, built: PatchingTask) -> None:
    """Ablate a set of components together; for heads, also keep only them (faithfulness)."""
    st.subheader("Ablate a set of components together")
    chosen = st.multiselect(
        "Heads, attention outputs or MLP outputs",
        [c.label for c in ablatable_components(model)],
        format_func=lambda label: Component.from_label(label).description,
        key=KEY_ABLATE,
    )
    method = st.radio(
        "Replace with", ABLATIONS, ABLATIONS.index(AblationRun.default("method")), horizontal=True, key=KEY_ABLATION,
        format_func={
            "zero": "zero",
            "mean": f"mean over a reference batch ({2 * built.clean.shape[0]} prompts: the clean and corrupted ones)",
            "resample": "the corrupted run's value",
        }.get,
    )  # fmt: skip
    spec = AblationRun(choice, tuple(chosen), method) if chosen else None
    if st.button("Ablate", key=KEY_ABLATE_RUN, disabled=not chosen):
        st.session_state[KEY_ABLATION_SPEC] = (model.info.weights_sha256, spec)
    if not _on_screen(KEY_ABLATION_SPEC, model, spec):
        return
    result: CircuitAblation | None = None
    with shown_as_message("Ablation"):
        result = cached_run(model, spec)
    if result is None:
        return
    together, kept, unit = result.ablation, result.faithfulness, built.metric.unit
    a, b, c = st.columns(3)
    a.metric("Full model", f"{together.metric_full:.3f} {unit}", help=md_escape(built.metric.label))
    share = f" ({100 * together.change / abs(together.metric_full):+.0f}% of the full model's)" if together.metric_full else ""
    b.metric("These components ablated", f"{together.metric_ablated:.3f} {unit}", f"{together.change:+.3f} {unit}{share}",
             delta_color="off")  # fmt: skip
    if kept is not None:  # faithfulness is about heads: only the chosen heads kept, every other head ablated
        c.metric("Only the chosen heads kept", f"{kept.circuit_only:.3f} {unit}",
                 f"all heads ablated: {kept.no_heads:.3f} {unit}", delta_color="off")  # fmt: skip
        if kept.preserved is not None:
            st.caption(
                f"Keeping only the chosen heads preserves {100 * kept.preserved:.0f}% of the full model's metric "
                "(faithfulness of the set)."
            )
    keep_run(model, spec, result, key="circ_keep_ablation", label="ablation")


def dla_section(model, choice: CircuitTask) -> None:
    """Each component's direct effect on the answer, through the frozen final norm and the unembedding."""
    if choice.metric_kind == "repeated_loss":
        st.caption("Direct logit attribution explains a logit at one position; the induction metric averages a loss over many.")
        return
    st.subheader("Direct logit attribution")
    spec = DirectLogitAttributionRun(choice)
    dla = None
    with shown_as_message("Direct logit attribution"):
        dla = cached_run(model, spec)
    if dla is None:
        return
    st.plotly_chart(dla_bar(dla))
    st.caption(
        f"Each component's direct effect on {md_escape(dla.metric_label)} through the final norm (its scale frozen) and the "
        f"unembedding; all of them plus the bias terms sum to {dla.total:.3f} (metric {dla.metric:.3f}). "
        "Indirect effects — a head that works by steering later heads — show in patching, not here."
    )
    keep_run(model, spec, dla, key="circ_keep_dla", label="direct logit attribution")


def _open_graph_head() -> None:
    points = st.session_state[KEY_EDGE_GRAPH].selection.points
    heads = [p["customdata"] for p in points if isinstance(p.get("customdata"), list) and p["customdata"][0] >= 0]
    if heads:
        st.session_state[KEY_EDGE_HEAD] = (int(heads[0][0]), int(heads[0][1]))


def edges_section(model, choice: CircuitTask, built: PatchingTask) -> None:
    """Score every edge, draw the top-n circuit as a graph beside its faithfulness curve, really patch any edge."""
    st.subheader("How they connect: the circuit as edges")
    st.caption(
        "An edge is one node's output (a head, an MLP, the embeddings) as read by one later input (a head's query, "
        "key or value, an MLP, the logits). Scores estimate what patching that edge alone from the corrupted run does "
        "to the metric; faithfulness keeps only the circuit's edges and patches all others."
    )
    controls = st.columns([3, 1, 1])
    method = controls[0].radio("Method", EDGE_METHODS, EDGE_METHODS.index(EdgeCircuitRun.default("method")),
                               EDGE_METHOD_TITLES.get, horizontal=True, key=KEY_EDGE_METHOD)  # fmt: skip
    steps = controls[1].number_input("EAP-IG steps (m)", 1, 50, EdgeCircuitRun.default("steps"), key=KEY_EDGE_STEPS,
                                     disabled=method == "eap", help="Points on the path from corrupted to clean.")  # fmt: skip
    spec = EdgeCircuitRun(choice, method, int(steps))
    if controls[2].button("Find the circuit", type="primary", key=KEY_EDGE_RUN):
        st.session_state[KEY_EDGE_SPEC] = (model.info.weights_sha256, spec)
    if not _on_screen(KEY_EDGE_SPEC, model, spec):
        return
    result: EdgeCircuitResult | None = None
    with shown_as_message("The edge circuit"):
        result = run_with_progress(model, spec, "Scoring every edge")
    if result is None:
        return
    _show_edges(model, choice, built, spec, result)


def _show_edges(model, choice: CircuitTask, built: PatchingTask, spec: EdgeCircuitRun, result: EdgeCircuitResult) -> None:
    scores, curve, unit = result.scores, result.curve, built.metric.unit
    a, b, c, d = st.columns(4)
    a.metric("Clean metric", f"{scores.metric_clean:.3f} {unit}")
    b.metric("Corrupted metric", f"{scores.metric_corrupted:.3f} {unit}")
    c.metric("Edges scored", f"{scores.graph.n_edges:,}", f"{scores.edges_per_second:,.0f} edges/s", delta_color="off")
    d.metric("CPR / CMD", f"{curve.cpr:.3f} / {curve.cmd:.3f}",
             f"random: {curve.random_cpr:.3f} / {curve.random_cmd:.3f}", delta_color="off")  # fmt: skip
    by, amount = st.columns([1, 3])
    choose_by = by.radio("Choose edges by", ("count", "score"), horizontal=True, key=KEY_EDGE_BY,
                         format_func={"count": "number", "score": "|score| threshold"}.get)  # fmt: skip
    if choose_by == "count":
        size = amount.slider("Circuit size (top edges by |score|, before pruning)", 1, min(200, scores.graph.n_edges),
                             min(10, scores.graph.n_edges), key=KEY_EDGE_SIZE)  # fmt: skip
        circuit = top_circuit(scores, size)
    else:
        largest = float(np.nanmax(np.abs(scores.scores)))
        threshold = amount.number_input(f"Keep every edge with |score| at least ({unit})", 0.0, largest,
                                        round(largest / 4, 3), format="%.3f", key=KEY_EDGE_THRESHOLD)  # fmt: skip
        circuit = top_circuit(scores, threshold=threshold)
        size = circuit.requested
    document = circuit_document(circuit, scores, result.checks)
    graph_col, curve_col = st.columns([1, 1])
    with graph_col:
        figure = circuit_graph(document, model.info.n_layers, model.info.n_heads)
        st.plotly_chart(figure, key=KEY_EDGE_GRAPH, on_select=_open_graph_head, selection_mode="points")
        st.caption(
            f"{len(circuit.edges)} of the top {size} edges lie on a path from the input to the logits (the others "
            "cannot change anything and are left out). Click a head to see its attention pattern."
        )
        down = st.columns(2)
        with down[0]:
            json_download(lambda: json.dumps(document, indent=1), "circuit.json", "Download the circuit (JSON)")
        with down[1]:
            figure_downloads(figure, "circuit")
    with curve_col:
        st.plotly_chart(faithfulness_plot(curve))
        st.caption("CPR: area under the curve (higher is better). CMD: area between the curve and 1 (lower is "
                   "better). Both over the fraction of edges, as in the MIB benchmark.")  # fmt: skip
    head = st.session_state.get(KEY_EDGE_HEAD)
    if head is not None and head[0] < model.info.n_layers and head[1] < model.info.n_heads:
        with shown_as_message("Recording the head's pattern"):
            st.plotly_chart(pattern_heatmap(attention_patterns(model, built.clean[0].tolist()), *head))
    checks = pd.DataFrame([(c.edge, c.estimate, c.patched) for c in result.checks],
                          columns=["edge", f"estimate ({unit})", f"really patched ({unit})"])  # fmt: skip
    st.markdown("**The top edges, really patched one at a time** (path patching of each edge)")
    st.dataframe(checks, hide_index=True)
    offered = [label for label, _ in scores.ranked(EDGE_CHOICES)]
    row = st.columns([3, 1])
    picked = row[0].selectbox("Check another edge", offered, key=KEY_EDGE_PICK)
    patch_spec = EdgePatchRun(choice, (picked,), spec.method, spec.steps) if picked else None
    if row[1].button("Patch this edge", key=KEY_EDGE_PATCH, disabled=not picked):
        st.session_state[KEY_EDGE_PATCH_SPEC] = (model.info.weights_sha256, patch_spec)
    if _on_screen(KEY_EDGE_PATCH_SPEC, model, patch_spec):
        with shown_as_message("Edge patching"):
            (check,) = cached_run(model, patch_spec)
            st.metric(f"{check.edge}, really patched", f"{check.patched:+.3f} {unit}",
                      f"estimate {check.estimate:+.3f} {unit}", delta_color="off")  # fmt: skip
    csv_download(lambda: curve.to_frame(), "faithfulness.csv", "Download the faithfulness curve (CSV)")
    keep_run(model, spec, result, key="circ_keep_edges", label="edge circuit")


st.title("Circuits")
st.caption(
    "Which components cause this behaviour? Patch activations between a clean and a corrupted prompt, "
    "compare with the fast attribution-patching estimate, ablate candidate circuits, and read direct logit attribution."
)
model = require_model()
_forget_what_this_model_lacks(model)
st.button("Use the model with a planted induction circuit", on_click=_use_planted_model, help=PLANTED_HELP)
picked = task_section(model)
if picked is None:
    st.stop()
choice, built = picked
patching = patching_section(model, choice, built)
if patching.sites == "heads" and KEY_OPEN_HEAD in st.session_state:
    open_head_section(model, built)
ablation_section(model, choice, built)
dla_section(model, choice)
edges_section(model, choice, built)
