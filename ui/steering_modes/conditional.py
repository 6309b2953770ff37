"""Mode "Only when it applies": conditional activation steering (CAST) on the Steering page."""

from __future__ import annotations

import streamlit as st

from interp.loading import LoadedModel
from steering.conditional import FOOD_PROMPTS, OTHER_PROMPTS
from steering.toolkit_plots import condition_projections_plot
from steering.toolkit_runs import CONDITION_TEST_PROMPTS, ConditionalResult, ConditionalSteering
from steering.vector import SteeringVector
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape
from ui.state import seed_input
from ui.steering_modes.common import START_COEFFICIENT, Mode, as_lines, prompt_lines, start_layer

KEY_ON = "steer_cast_on"
KEY_OFF = "steer_cast_off"
KEY_TESTS = "steer_cast_tests"
KEY_CONDITION_LAYER = "steer_cast_condition_layer"
KEY_LAYER = "steer_cast_layer"
KEY_COEF = "steer_cast_coefficient"


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Steer only when it applies (CAST)")
    st.caption(
        "A condition direction, read from two lists of prompts, decides per prompt whether the vector is added at all: "
        "a prompt whose mean activation points along it (cosine above the fitted threshold) is steered, every other "
        "prompt decodes exactly as unsteered (Lee et al. 2024)."
    )
    left, right = st.columns(2)
    seed_input(KEY_ON, as_lines(FOOD_PROMPTS))
    seed_input(KEY_OFF, as_lines(OTHER_PROMPTS))
    on_text = left.text_area("Steer prompts like these ('on', one per line)", key=KEY_ON, height=180, persist_state="session")
    off_text = right.text_area("Leave prompts like these alone ('off')", key=KEY_OFF, height=180, persist_state="session")
    layers = list(vector.layers)
    all_layers = list(range(model.info.n_layers))
    seed_input(KEY_CONDITION_LAYER, model.info.n_layers // 3, allowed=all_layers)
    seed_input(KEY_LAYER, start_layer(layers), allowed=layers)
    seed_input(KEY_COEF, START_COEFFICIENT)
    controls = st.columns(3)
    condition_layer = controls[0].select_slider(
        "Condition read at layer", options=all_layers, key=KEY_CONDITION_LAYER, persist_state="session"
    )
    layer = controls[1].select_slider("Steer at layer", options=layers, key=KEY_LAYER, persist_state="session")
    coefficient = controls[2].slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF, persist_state="session")
    seed_input(KEY_TESTS, as_lines(CONDITION_TEST_PROMPTS))
    tests_text = st.text_area("Test prompts (one per line)", key=KEY_TESTS, height=110, persist_state="session")
    with shown_as_message("Conditional steering"):
        gen = generation_model(model)
        spec = ConditionalSteering(
            vector.at_layers([layer]), layer, float(coefficient), condition_layer, prompt_lines(on_text),
            prompt_lines(off_text), prompt_lines(tests_text),
        )  # fmt: skip
        result = run_with_progress(gen, spec, "Fitting the condition and writing the test prompts")
        show(result)
        keep_run(gen, spec, result, key="steer_cast_keep", label="conditional steering")


def show(result: ConditionalResult) -> None:
    numbers = st.columns(3)
    numbers[0].metric("Threshold (cosine)", f"{result.threshold:+.3f}")
    n_labelled = len(result.on_projections) + len(result.off_projections)
    numbers[1].metric(f"Accuracy on the {n_labelled} labelled prompts", f"{100 * result.accuracy:.0f}%")
    numbers[2].metric("Test prompts steered", f"{result.n_fired} of {len(result.samples)}")
    st.caption(
        "The accuracy is measured on the prompts the threshold was fitted on, so it flatters the condition: "
        "the test prompts below show how it does on others."
    )
    st.plotly_chart(condition_projections_plot(result))
    for sample in result.samples:
        verdict = "**fires: yes** — steered" if sample.fires else "**fires: no** — not steered"
        relation = ">" if sample.fires else "≤"
        st.markdown(
            f"{md_escape(sample.prompt)}  \n{verdict} (projection {sample.projection:+.3f} {relation} "
            f"threshold {result.threshold:+.3f})"
        )
        plain_col, steered_col = st.columns(2)
        plain_col.caption("Unsteered")
        plain_col.text(sample.unsteered)
        steered_col.caption(
            f"With the condition (layer {result.layer}, coefficient {result.coefficient:+g})"
            if sample.fires
            else "With the condition (skipped: the same as unsteered)"
        )
        steered_col.text(sample.conditional)


MODE = Mode("conditional", "Only when it applies", draw)
