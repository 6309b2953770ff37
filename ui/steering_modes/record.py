"""Mode "Look inside": what the residual stream carried along the vector while the steered model wrote, recorded in
the generation's own forward passes (steering/record.py)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from interp.loading import LoadedModel
from steering.record import SteeredRecording, SteeredRecordingRun
from steering.sweep import NEUTRAL_PROMPTS
from steering.toolkit_plots import recording_norm_plot, recording_projection_heatmap
from steering.vector import SteeringVector
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.records import keep_run
from ui.render import warn_unknown_text
from ui.state import seed_input
from ui.steering_modes.common import START_COEFFICIENT, Mode, start_layer, stoppable_result

KEY_PROMPT = "steer_record_prompt"
KEY_LAYER = "steer_record_layer"
KEY_COEF = "steer_record_coefficient"
KEY_TOKENS = "steer_record_tokens"
KEY_RUN = "steer_record"  # the button; its Stop button is f"{KEY_RUN}_stop"
KEY_SPEC = "steer_record_spec"


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Look inside while it steers")
    st.caption(
        "The model writes greedily with the vector added at one layer, and the residual stream (resid_pre of every "
        "layer) is captured in the very forward passes that chose the tokens — nothing is recomputed afterwards. Shown: "
        "how much of the vector's direction each layer carries at each position, and the stream's norm."
    )
    layers = list(vector.layers)
    seed_input(KEY_PROMPT, NEUTRAL_PROMPTS[0])
    seed_input(KEY_LAYER, start_layer(layers), allowed=layers)
    seed_input(KEY_COEF, START_COEFFICIENT)
    seed_input(KEY_TOKENS, SteeredRecordingRun.default("max_new_tokens"))
    prompt = st.text_input("Prompt", key=KEY_PROMPT, persist_state="session")
    warn_unknown_text(model, prompt)
    controls = st.columns([3, 3, 1, 1])
    layer = controls[0].select_slider("Steer at layer", options=layers, key=KEY_LAYER, persist_state="session")
    coefficient = controls[1].slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF, persist_state="session")
    tokens = controls[2].number_input("New tokens", 1, 64, key=KEY_TOKENS, persist_state="session")
    controls[3].write("")
    clicked = controls[3].button("Record", type="primary", key=KEY_RUN)
    gen = generation_model(model)
    if clicked:
        st.session_state.pop(KEY_SPEC, None)  # a failed new recording must not leave the old one looking current
        with shown_as_message("Recording"):
            st.session_state[KEY_SPEC] = SteeredRecordingRun(
                vector.at_layers([layer]), layer, float(coefficient), prompt, max_new_tokens=int(tokens)
            )
    spec, recording = stoppable_result(gen, KEY_SPEC, KEY_RUN, "Recording")
    if recording is None:
        return
    show(recording, spec)
    keep_run(gen, spec, recording, key="steer_record_keep", label="the recording")


def show(recording: SteeredRecording, spec: SteeredRecordingRun) -> None:
    st.markdown(f"**Written with the vector at layer {spec.layer}, coefficient {spec.coefficient:+g}** (greedy)")
    st.text(recording.prompt + recording.text)
    steered = f"blocks.{spec.layer}.hook_resid_pre"
    last = recording.names[-1]
    generated = slice(recording.n_prompt, None)
    numbers = st.columns(4)
    numbers[0].metric(
        "Forward passes", f"{recording.forward_passes}",
        help="the generation's own: one over the prompt, then one per generated token but the last; each was recorded",
    )  # fmt: skip
    numbers[1].metric("Positions recorded", f"{len(recording.tokens)}", f"{recording.n_prompt} prompt", delta_color="off")
    if steered in recording.projections:
        along = recording.projection(steered)[generated]
        value = f"{float(np.mean(along)):+.2f}" if along.size else "—"
        numbers[2].metric(
            f"Along the direction at layer {spec.layer}", value, help="mean over the generated positions, residual units"
        )
    along_last = recording.projection(last)[generated]
    numbers[3].metric(
        f"Along it at {last.split('.hook')[0].replace('blocks.', 'layer ')}",
        f"{float(np.mean(along_last)):+.2f}" if along_last.size else "—",
        help="mean over the generated positions, residual units; the last recorded layer",
    )  # fmt: skip
    st.plotly_chart(recording_projection_heatmap(recording))
    shown = [name for name in dict.fromkeys([steered, last]) if name in recording.norms]
    st.plotly_chart(recording_norm_plot(recording, shown))
    st.caption(
        f"Captured during generation, no recompute: {recording.forward_passes} forward passes for "
        f"{len(recording.token_ids)} generated tokens, the capture hooks after the steering hook, so layer {spec.layer} "
        f"shows the activation after the addition and the layers above it what it became. Projection: the component "
        f"along the unit direction added at layer {spec.layer}, at every layer (the layers below it show how much the "
        "stream carried before the addition); the dashed line is where the generated positions begin."
    )


MODE = Mode("record", "Look inside", draw)
