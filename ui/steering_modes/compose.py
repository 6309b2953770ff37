"""Mode "Combine vectors": this vector and a second one from a built-in dataset at once, and whether their effects add."""

from __future__ import annotations

import streamlit as st

from interp.loading import LoadedModel
from steering.compose import Composition, CompositionItem, SteeringComposition
from steering.datasets import BUILT_IN, built_in
from steering.runs import behaviour_scorer
from steering.scores import SCORERS
from steering.sweep import NEUTRAL_PROMPTS
from steering.toolkit_plots import composition_bars, composition_damage_bars
from steering.vector import SteeringVector
from ui.cached import cached_steering_vector
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.records import keep_run
from ui.render import md_escape
from ui.state import seed_input, trained_reward_model
from ui.steering_modes.common import START_COEFFICIENT, Mode, as_lines, prompt_lines, start_layer, stoppable_result

KEY_LAYER = "steer_compose_layer"
KEY_COEF = "steer_compose_coefficient"
KEY_SCORER = "steer_compose_scorer"
KEY_DATASET = "steer_compose_dataset"
KEY_LAYER_2 = "steer_compose_layer_2"
KEY_COEF_2 = "steer_compose_coefficient_2"
KEY_SCORER_2 = "steer_compose_scorer_2"
KEY_PROMPTS = "steer_compose_prompts"
KEY_SAMPLES = "steer_compose_samples"
KEY_RUN = "steer_compose"  # the Combine button; its Stop button is f"{KEY_RUN}_stop"
KEY_SPEC = "steer_compose_spec"
# The second vector is made as the page makes a dataset's by default: mean difference, activations averaged over tokens
METHOD, POSITION = "mean_difference", "mean"
THIS_VECTOR = "this vector"


def second_vector(model: LoadedModel, name: str) -> SteeringVector:
    """The built-in dataset ``name``'s vector at every layer, from the page's cache (the same one its section 1 makes)."""
    layers = tuple(range(model.info.n_layers))
    with st.spinner("Recording activations at every layer"):
        return cached_steering_vector(
            model, model.info.weights_sha256, "dataset", (name,), built_in(name), METHOD, POSITION, layers
        )


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Combine vectors")
    st.caption(
        "This vector and a second one are added together (at each hook point the sum of both additions). The same "
        "prompts and seeds are sampled unsteered, with each vector alone and with both, and every condition is scored "
        "for each vector's behaviour: do the effects simply add, or does one get in the other's way?"
    )
    reward = trained_reward_model(model)
    scorers = [*SCORERS, "reward"] if reward is not None else list(SCORERS)
    label = {name: behaviour_scorer(model, name, reward) for name in scorers}
    layers = list(vector.layers)
    all_layers = list(range(model.info.n_layers))
    datasets = list(BUILT_IN)
    seed_input(KEY_LAYER, start_layer(layers), allowed=layers)
    seed_input(KEY_COEF, START_COEFFICIENT)
    seed_input(KEY_SCORER, scorers[0], allowed=scorers)
    seed_input(KEY_DATASET, "weddings" if "weddings" in datasets else datasets[0], allowed=datasets)
    seed_input(KEY_LAYER_2, start_layer(all_layers), allowed=all_layers)
    seed_input(KEY_COEF_2, START_COEFFICIENT)
    seed_input(KEY_SCORER_2, "weddings" if "weddings" in scorers else scorers[0], allowed=scorers)
    first, second = st.columns(2)
    first.markdown("**1 · This vector**")
    layer = first.select_slider("Layer", options=layers, key=KEY_LAYER, persist_state="session")
    coefficient = first.slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF, persist_state="session")
    scorer = first.selectbox(
        "Its behaviour score", scorers, format_func=lambda s: label[s].name, key=KEY_SCORER, persist_state="session"
    )
    second.markdown("**2 · A built-in dataset's vector**")
    dataset = second.selectbox("Dataset", datasets, format_func=BUILT_IN.get, key=KEY_DATASET, persist_state="session")
    layer_2 = second.select_slider("Layer", options=all_layers, key=KEY_LAYER_2, persist_state="session")
    coefficient_2 = second.slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF_2, persist_state="session")
    scorer_2 = second.selectbox(
        "Its behaviour score", scorers, format_func=lambda s: label[s].name, key=KEY_SCORER_2, persist_state="session"
    )
    seed_input(KEY_PROMPTS, as_lines(NEUTRAL_PROMPTS))
    seed_input(KEY_SAMPLES, SteeringComposition.default("n_samples"))
    bottom = st.columns([5, 1, 1])
    prompts_text = bottom[0].text_area("Prompts (one per line)", key=KEY_PROMPTS, height=120, persist_state="session")
    n_samples = bottom[1].number_input("Samples", 1, 8, key=KEY_SAMPLES, persist_state="session")
    bottom[2].write("")
    clicked = bottom[2].button("Combine", type="primary", key=KEY_RUN)
    gen = generation_model(model)
    if clicked:
        st.session_state.pop(KEY_SPEC, None)  # a failed new run must not leave the old one looking current
        with shown_as_message("Combining the vectors"):
            other = second_vector(model, dataset)
            st.session_state[KEY_SPEC] = SteeringComposition(
                (
                    CompositionItem(vector.at_layers([layer]), (layer,), float(coefficient), scorer, THIS_VECTOR),
                    CompositionItem(other.at_layers([layer_2]), (layer_2,), float(coefficient_2), scorer_2, dataset),
                ),
                reward_model=reward if "reward" in (scorer, scorer_2) else None,
                prompts=prompt_lines(prompts_text),
                n_samples=int(n_samples),
            )
    spec, result = stoppable_result(gen, KEY_SPEC, KEY_RUN, "Combining the vectors")
    if result is None:
        return
    units = {label[item.scorer].name: label[item.scorer].unit for item in spec.items if item.scorer in label}
    show(result, spec, units)
    keep_run(gen, spec, result, key="steer_compose_keep", label="the combination")


def show(result: Composition, spec: SteeringComposition, units: dict[str, str]) -> None:
    settings = ", ".join(
        f"{item.label} at layer {item.layers[0]} ×{item.coefficient:+g}" for item in spec.items
    )  # each item steers one layer here
    st.caption(f"{settings}; {len(result.prompts)} prompts × {spec.n_samples} samples in each condition.")
    st.plotly_chart(composition_bars(result, units))
    numbers = st.columns(2 * len(result.behaviours))
    prediction = result.additive_prediction
    for b, behaviour in enumerate(result.behaviours):
        unit = units.get(result.scorers[b], "score")
        non_additive = float(result.together[b] - prediction[b])
        numbers[2 * b].metric(
            f"Interaction — {behaviour} ({unit})", f"{non_additive:+.3f}",
            help=f"{behaviour}'s behaviour score: together − additive prediction (unsteered + each vector's change alone)",
        )  # fmt: skip
        numbers[2 * b + 1].metric(
            f"The other vector's effect — {behaviour} ({unit})", f"{float(result.interaction[b]):+.3f}",
            help=f"{behaviour}'s behaviour score: together − that vector alone",
        )  # fmt: skip
    st.caption(
        "Interaction: how far the score with both vectors is from the additive prediction — the unsteered score plus "
        "each vector's own change alone. Near 0 the effects simply add; negative, combining them loses some of it "
        "(one gets in the other's way); positive, they reinforce. A difference smaller than the spread between samples "
        "is noise."
    )
    st.dataframe(result.to_frame(), hide_index=True)
    st.plotly_chart(composition_damage_bars(result))
    together = result.conditions[-1]
    damage = st.columns(2)
    ratio = float(result.perplexity_ratio[-1])
    damage[0].metric("Perplexity, together", f"{together.mean_perplexity:.1f}", f"x{ratio:.2f} unsteered", delta_color="inverse")
    damage[1].metric("KL(unsteered ‖ together)", f"{together.mean_kl:.3f} nats", help="mean over the generated positions")
    st.dataframe(result.damage_frame(), hide_index=True)
    with st.expander("The samples of each condition"):
        for condition in result.conditions:
            st.markdown(f"**{md_escape(condition.condition)}**")
            for prompt_index, prompt in enumerate(result.prompts[:3]):
                st.text(prompt + condition.texts[prompt_index * spec.n_samples])


MODE = Mode("compose", "Combine vectors", draw)
