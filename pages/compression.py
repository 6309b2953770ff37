"""Compression: what quantisation and pruning cost in quality, size and speed, and what they change inside."""

from __future__ import annotations

import streamlit as st

from interp.compression import CompressionStudy, CompressionStudyRun, Variant
from interp.compression.study import DEFAULT_VARIANTS
from interp.plots.compression import inside_plot, tradeoff_plot
from steering.transfer import SteeringTransfer, SteeringTransferRun
from ui.downloads import csv_download
from ui.errors import shown_as_message
from ui.model import original_model, require_model
from ui.progress import run_with_progress
from ui.records import keep_run

KEY_VARIANTS = "comp_variants"
KEY_PRUNE = "comp_prune"
KEY_IOI = "comp_ioi"
KEY_RUN = "comp_run"
KEY_SPEC = "comp_spec"  # (weights, CompressionStudyRun) of the study on screen
KEY_TRANSFER_VARIANT = "comp_transfer_variant"
KEY_TRANSFER_LAYER = "comp_transfer_layer"
KEY_TRANSFER_RUN = "comp_transfer_run"
KEY_TRANSFER_SPEC = "comp_transfer_spec"
PRESETS = {variant.describe(): variant for variant in DEFAULT_VARIANTS}


def study_section(model) -> CompressionStudyRun | None:
    """Choose the variants (presets, and a pruning share of your own) and whether to measure the IOI circuit."""
    default = [Variant("bf16"), Variant("int8_weight"), Variant("int4_weight")]
    chosen = st.multiselect("Variants", list(PRESETS), [v.describe() for v in default], key=KEY_VARIANTS)
    left, right = st.columns(2)
    share = left.slider("Also prune this share of the projection weights (0: none)", 0, 95, 0, 5, format="%d%%",
                        key=KEY_PRUNE)  # fmt: skip
    ioi = right.checkbox("Measure the IOI circuit too (two head-patching sweeps per variant)", False, key=KEY_IOI)
    variants = [PRESETS[name] for name in chosen] + ([Variant("prune_unstructured", share / 100)] if share else [])
    if not variants:
        st.info("Choose at least one variant.")
        return None
    spec = CompressionStudyRun(tuple(dict.fromkeys(variants)), ioi=ioi)
    if st.button("Compare with the original", type="primary", key=KEY_RUN):
        st.session_state[KEY_SPEC] = (model.info.weights_sha256, spec)
    return spec


def results_section(model, spec: CompressionStudyRun, study: CompressionStudy) -> None:
    base = study.original
    st.caption(f"The original: {base.weight_bytes / 2**20:,.1f} MiB of weights, forward pass of the held-out text "
               f"{base.forward_ms:,.0f} ms, greedy decoding {base.decode_tokens_per_second:,.1f} tokens/s.")  # fmt: skip
    table = study.to_frame()
    st.dataframe(table, hide_index=True, column_config={
        "weights (MiB)": st.column_config.NumberColumn(format="%.1f"),
        "weights vs original": st.column_config.NumberColumn(format="%.2fx"),
        "forward (ms)": st.column_config.NumberColumn(format="%.0f"),
        "decode (tokens/s)": st.column_config.NumberColumn(format="%.1f"),
        "perplexity": st.column_config.NumberColumn(format="%.2f"),
        "perplexity vs original": st.column_config.NumberColumn(format="%.2fx"),
        "KL to original (nats/token)": st.column_config.NumberColumn(format="%.4f"),
        "same next token (%)": st.column_config.NumberColumn(format="%.1f"),
        "IOI correlation": st.column_config.NumberColumn(format="%.2f"),
    })  # fmt: skip
    left, right = st.columns(2)
    left.plotly_chart(tradeoff_plot(study))
    right.plotly_chart(inside_plot(study))
    st.caption("A head survives while its score stays at least half the original's. IOI correlation: how closely the "
               "variant's head-patching scores follow the original's (1 = the circuit did not move).")  # fmt: skip
    csv_download(study.to_frame, "compression.csv", "Download the table (CSV)")
    keep_run(model, spec, study, key="comp_keep", label="compression study")


def transfer_section(model) -> None:
    """Does a steering vector made on the full model still steer the compressed copy?"""
    st.subheader("Does a steering vector still work on the copy?")
    st.caption(
        "The sentiment vector (mean difference of the built-in pairs) is made on the model as loaded and applied to "
        "both, with the same prompts and seeds; then re-made on the copy to see whether its direction moved."
    )
    left, middle, right = st.columns([2, 1, 1])
    name = left.selectbox("Copy", list(PRESETS), key=KEY_TRANSFER_VARIANT)
    layer = middle.number_input("Layer", 0, model.info.n_layers - 1, min(SteeringTransferRun.default("layer"),
                                model.info.n_layers - 1), key=KEY_TRANSFER_LAYER)  # fmt: skip
    spec = SteeringTransferRun(PRESETS[name], layer=int(layer))
    if right.button("Steer both", key=KEY_TRANSFER_RUN):
        st.session_state[KEY_TRANSFER_SPEC] = (model.info.weights_sha256, spec)
    if st.session_state.get(KEY_TRANSFER_SPEC) != (model.info.weights_sha256, spec):
        return
    result: SteeringTransfer | None = None
    with shown_as_message("Steering transfer"):
        result = run_with_progress(model, spec, "Steering the original and the copy")
    if result is None:
        return
    a, b, c = st.columns(3)
    for column, label, evaluation in ((a, "On the original", result.on_original), (b, "On the copy", result.on_variant)):
        column.metric(f"{label}: sentiment gain (VADER, -1..1)", f"{evaluation.behaviour_gain:+.2f}",
                      f"perplexity x{evaluation.perplexity_ratio:.2f}", delta_color="off")  # fmt: skip
    c.metric("Cosine to the vector re-made on the copy", f"{result.remade_cosine:.3f}",
             f"gain kept: {100 * result.gain_kept:.0f}%", delta_color="off")  # fmt: skip
    keep_run(model, spec, result, key="comp_keep_transfer", label="steering transfer")


st.title("Compression")
st.caption(
    "What quantising or pruning the model costs — size, speed, perplexity, next-token KL — and what it breaks inside: "
    "induction heads, the IOI circuit. Every variant is measured against the original on the same text."
)
model = require_model()
if original_model() is not None and original_model() is not model:
    st.info("The other pages run on a compressed copy (sidebar); this page compares variants of the model as loaded.")
    model = original_model()
spec = study_section(model)
if spec is not None and st.session_state.get(KEY_SPEC) == (model.info.weights_sha256, spec):
    study = None
    with shown_as_message("The compression study"):
        study = run_with_progress(model, spec, "Building and measuring the variants")
    if study is not None:
        results_section(model, spec, study)
transfer_section(model)
