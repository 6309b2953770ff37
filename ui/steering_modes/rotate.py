"""Mode "Rotate": angular steering on the Steering page (turn each activation toward the direction, norm kept)."""

from __future__ import annotations

import streamlit as st

from interp.loading import LoadedModel
from steering.runs import behaviour_scorer
from steering.scores import SCORERS
from steering.sweep import NEUTRAL_PROMPTS
from steering.toolkit_runs import AngularResult, AngularSteering
from steering.vector import SteeringVector
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import warn_unknown_text
from ui.state import seed_input, trained_reward_model
from ui.steering_modes.common import Mode, start_layer

KEY_LAYER = "steer_rotate_layer"
KEY_ANGLE = "steer_rotate_angle"
KEY_SCORER = "steer_rotate_scorer"
KEY_SAMPLES = "steer_rotate_samples"
KEY_PROMPT = "steer_rotate_prompt"
START_ANGLE = 20.0


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Rotate toward the direction")
    st.caption(
        "Each activation at the layer is turned toward the vector's direction in the plane the two span, keeping its "
        "length: 0° changes nothing, 90° turns it a quarter circle toward the direction (it stops at the direction), "
        "negative angles turn it away. Only the vector's direction counts, not its length (Vu & Nguyen 2025)."
    )
    layers = list(vector.layers)
    seed_input(KEY_LAYER, start_layer(layers), allowed=layers)
    seed_input(KEY_ANGLE, START_ANGLE)
    reward = trained_reward_model(model)
    scorers = [*SCORERS, "reward"] if reward is not None else list(SCORERS)
    label = {name: behaviour_scorer(model, name, reward) for name in scorers}
    controls = st.columns([2, 2, 2, 1])
    layer = controls[0].select_slider("Layer", options=layers, key=KEY_LAYER, persist_state="session")
    angle = controls[1].slider("Angle (degrees)", -180.0, 180.0, step=5.0, key=KEY_ANGLE, persist_state="session")
    scorer = controls[2].selectbox("Behaviour score", scorers, format_func=lambda s: label[s].name, key=KEY_SCORER)
    n_samples = controls[3].number_input("Samples", 1, 8, AngularSteering.default("n_samples"), key=KEY_SAMPLES)
    seed_input(KEY_PROMPT, NEUTRAL_PROMPTS[0])
    prompt = st.text_input("Prompt", key=KEY_PROMPT, persist_state="session")
    warn_unknown_text(model, prompt)
    with shown_as_message("Rotating"):
        gen = generation_model(model)
        spec = AngularSteering(
            vector.at_layers([layer]), layer, float(angle), scorer=scorer, reward_model=reward if scorer == "reward" else None,
            prompts=(prompt,), n_samples=int(n_samples),
        )  # fmt: skip
        result = run_with_progress(gen, spec, "Unsteered and rotated samples")
        show(result, label[scorer].unit, prompt)
        keep_run(gen, spec, result, key="steer_rotate_keep", label="the rotation")


def show(result: AngularResult, unit: str, prompt: str) -> None:
    numbers = st.columns(4)
    gain = f"{result.behaviour_gain:+.3f} vs unsteered"
    numbers[0].metric(f"Behaviour ({unit})", f"{result.steered.mean_behaviour:+.3f}", gain)
    numbers[1].metric(
        "Perplexity under the unsteered model",
        f"{result.steered.mean_perplexity:.1f}",
        f"x{result.perplexity_ratio:.2f} unsteered",
        delta_color="inverse",
    )
    distinct_change = 100 * (result.steered.mean_distinct2 - result.unsteered.mean_distinct2)
    numbers[2].metric("Distinct bigrams", f"{100 * result.steered.mean_distinct2:.0f}%", f"{distinct_change:+.0f} pts")
    numbers[3].metric("KL(unsteered ‖ rotated)", f"{result.kl:.3f} nats", help="mean over the rotated samples' positions")
    norms = st.columns(4)
    measured = "measured in the hook at every position it rotated, while the rotated texts were read back"
    norms[0].metric(f"Norm ‖x‖ before (layer {result.layer})", f"{result.norm_before:.2f}", help=measured)
    norms[1].metric(
        "Norm ‖x′‖ after",
        f"{result.norm_after:.2f}",
        f"largest change {100 * result.max_norm_change:.4f}%",
        delta_color="off",
        delta_arrow="off",
        help=measured,
    )
    plain_col, steered_col = st.columns(2)
    plain_col.markdown("**Unsteered**")
    steered_col.markdown(f"**Rotated** (layer {result.layer}, {result.angle_degrees:+g}° toward the direction)")
    for unsteered, steered in zip(result.unsteered.texts, result.steered.texts, strict=True):
        plain_col.text(prompt + unsteered)
        steered_col.text(prompt + steered)


MODE = Mode("rotate", "Rotate", draw)
