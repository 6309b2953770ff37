"""Mode "Remove a direction": directional ablation on the Steering page, and the orthogonalised checkpoint to download."""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from interp.loading import LoadedModel
from steering.ablation import HARMFUL_INSTRUCTIONS, HARMLESS_INSTRUCTIONS
from steering.toolkit_plots import PARITY_LIMIT, parity_plot
from steering.toolkit_runs import AblationResult, DirectionAblation, OrthogonalisedExport
from steering.vector import SteeringVector
from ui.cached import is_cached
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, warn_unknown_text
from ui.state import seed_input
from ui.steering_modes.common import Mode, as_lines, prompt_lines, start_layer, stored_result

KEY_SOURCE = "steer_ablate_source"
KEY_LAYER = "steer_ablate_layer"
KEY_HARMFUL = "steer_ablate_harmful"
KEY_HARMLESS = "steer_ablate_harmless"
KEY_INSTRUCTION = "steer_ablate_instruction"
KEY_BUILD = "steer_ablate_build"
KEY_EXPORT_SPEC = "steer_ablate_export_spec"  # the checkpoint asked for (its spec; the archive comes from the cache)
SOURCES = {"refusal": "The refusal direction (harmful − harmless instructions)", "vector": "This vector's direction"}


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Remove a direction")
    st.caption(
        "The direction is projected out wherever the model writes to its residual stream (every layer's input, attention "
        "and MLP output, and the last block's output): x ← x − (x·d̂)d̂. Removing the refusal direction stops an instruct "
        "model refusing (Arditi et al. 2024); the same can be baked into the weights and downloaded."
    )
    source = st.radio(
        "Direction", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=KEY_SOURCE, persist_state="session"
    )
    layers = list(range(model.info.n_layers)) if source == "refusal" else list(vector.layers)
    seed_input(KEY_LAYER, model.info.n_layers // 2 if source == "refusal" else start_layer(layers), allowed=layers)
    layer = st.select_slider("Read at layer", options=layers, key=KEY_LAYER, persist_state="session")
    harmful, harmless = HARMFUL_INSTRUCTIONS, HARMLESS_INSTRUCTIONS
    if source == "refusal":
        seed_input(KEY_HARMFUL, as_lines(HARMFUL_INSTRUCTIONS))
        seed_input(KEY_HARMLESS, as_lines(HARMLESS_INSTRUCTIONS))
        with st.expander("The instructions the direction is made from (written for Steerscope; edit them)"):
            left, right = st.columns(2)
            harmful = prompt_lines(left.text_area("Harmful (one per line)", key=KEY_HARMFUL, height=200, persist_state="session"))
            harmless = prompt_lines(right.text_area("Harmless", key=KEY_HARMLESS, height=200, persist_state="session"))
    seed_input(KEY_INSTRUCTION, HARMFUL_INSTRUCTIONS[0])
    instruction = st.text_input("Instruction (answered in the chat template)", key=KEY_INSTRUCTION, persist_state="session")
    warn_unknown_text(model, instruction)
    with shown_as_message("Removing the direction"):
        gen = generation_model(model)
        spec = DirectionAblation(
            source, instruction, layer, harmful, harmless, vector.at_layers([layer]) if source == "vector" else None
        )
        result = run_with_progress(gen, spec, "Answering with and without the direction")
        show(result)
        keep_run(gen, spec, result, key="steer_ablate_keep", label="the ablation")
        export_section(model, OrthogonalisedExport(result.direction, result.instruction))


def show(result: AblationResult) -> None:
    st.caption(f"Removing {md_escape(result.source)}; length before normalising {result.separation:.2f}.")
    numbers = st.columns(3)
    numbers[0].metric("KL(unablated ‖ ablated)", f"{result.kl:.3f} nats", help="mean over the ablated answer's positions")
    ratio = result.perplexity_ablated / result.perplexity_unablated
    numbers[1].metric(
        "Perplexity under the unablated model",
        f"{result.perplexity_ablated:.1f}",
        f"x{ratio:.2f} unablated",
        delta_color="inverse",
    )
    change = 100 * (result.distinct2_ablated - result.distinct2_unablated)
    numbers[2].metric("Distinct bigrams", f"{100 * result.distinct2_ablated:.0f}%", f"{change:+.0f} pts")
    plain_col, ablated_col = st.columns(2)
    plain_col.markdown("**Without the ablation**")
    plain_col.text(result.unablated)
    ablated_col.markdown(f"**Direction removed** (layer {result.layer})")
    ablated_col.text(result.ablated)


def export_section(model: LoadedModel, spec: OrthogonalisedExport) -> None:
    """A button that builds the orthogonalised checkpoint (with progress), then its download and the parity figure."""
    st.markdown("**Download the orthogonalised checkpoint**")
    asked = st.session_state.get(KEY_EXPORT_SPEC)
    if asked is None or asked.digest() != spec.digest():  # none yet, or one for another direction
        offer = st.empty()
        with offer.container():
            st.caption(
                "The same ablation baked into the weights: every residual writer W ← W − d̂d̂ᵀW, saved as a Hugging Face "
                "folder (safetensors) that `interp.load_model(folder)` loads with no hooks. Built on the server when you ask."
            )
            clicked = st.button("Build the checkpoint", key=KEY_BUILD)
        if not clicked:
            return
        offer.empty()  # the offer is answered: the progress and then the download take its place
        st.session_state[KEY_EXPORT_SPEC] = spec
    note = st.empty()
    if not is_cached(model, spec):
        note.caption("Writing the checkpoint, loading it back and zipping it (seconds to a minute on the default model).")
    _, archive = stored_result(model, KEY_EXPORT_SPEC, "Building the checkpoint")
    note.empty()
    if archive is None:
        return
    st.download_button(
        f"Download the orthogonalised checkpoint (.zip, {archive.size_bytes / 2**20:.0f} MB)",
        data=functools.partial(Path(archive.zip_path).read_bytes),  # read when clicked, not on every rerun
        file_name="orthogonalised.zip",
        mime="application/zip",
        on_click="ignore",
        type="primary",
    )
    verdict = "equal up to float32 rounding, within" if archive.max_difference <= PARITY_LIMIT else "NOT equal within"
    st.caption(
        f"Parity on the instruction: the saved weights' logits and the hooks' are {verdict} {PARITY_LIMIT:g} "
        f"(max |logit difference| {archive.max_difference:.1e}; the ablation itself moves logits by up to "
        f"{max(archive.original_vs_ablated):.2f}). {archive.changed} tensors changed"
        f"{'; the tied unembedding is saved untied' if archive.untied else ''}. Files: {', '.join(archive.files)}."
    )
    st.plotly_chart(parity_plot(archive))


MODE = Mode("ablation", "Remove a direction", draw)
