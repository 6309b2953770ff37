"""Steering: build a vector, then use it in one of the modes — add it (tune live, sweep, read, export, evaluate on a
file), only where a condition applies, remove its direction (or the refusal direction), or rotate toward it."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from interp.errors import SteerscopeError
from interp.lens import LogitLensRun
from interp.prompt_files import read_prompt_file
from interp.spreadsheet import to_csv_bytes
from interp.tokens import tokenize
from interp.validation import parse_ints, parse_numbers
from serve.library import VectorLibrary
from steering.datasets import BUILT_IN, ContrastPairs, built_in, pairs_from_rows, read_pairs
from steering.live import UnsteeredSamples, start_steered
from steering.make import POSITIONS
from steering.meaning import LENS_PROBE, READING_HOLDS, layer_cosines, token_effects, token_projections, unembedding_check
from steering.plots import cosine_heatmap, pareto_plot, sweep_heatmaps, token_effect_bars
from steering.reliability import per_prompt_effects
from steering.runs import SteeringBatchEvaluation, SteeringEvaluation, SteeringSweep, batch_summary, behaviour_scorer
from steering.scores import SCORERS
from steering.sweep import SweepResult
from steering.toolkit_plots import pair_consistency_plot
from steering.toolkit_runs import PairConsistencyCheck, consistency_reading
from steering.vector import SteeringVector, applied_coefficient, load_vector
from ui.cached import cached_run, cached_steering_vector, is_cached, store_run
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.live import last_streamed, stop_requested, stream_texts
from ui.model import require_model
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, token_chips, warn_unknown_text
from ui.state import seed_input, trained_reward_model
from ui.steering_modes import MODES
from ui.steering_modes.common import START_COEFFICIENT, START_LAYER, start_layer, stored_result

KEY_SOURCE = "steer_source"
KEY_DATASET = "steer_dataset"
KEY_PAIRS = "steer_pairs_editor"
KEY_PAIRS_FILE = "steer_pairs_file"
KEY_VECTOR_FILE = "steer_vector_file"
KEY_VECTOR_LAYERS = "steer_vector_file_layers"
KEY_LIBRARY_NAME = "steer_library_name"
KEY_LIBRARY_SAVE = "steer_library_save"
KEY_VECTOR_SEEN = "steer_vector_file_seen"  # the upload whose coefficient the slider was last started from
KEY_METHOD = "steer_method"
KEY_POSITION = "steer_position"
KEY_ACTADD_POS = "steer_actadd_pos"
KEY_ACTADD_NEG = "steer_actadd_neg"
KEY_LAYER = "steer_layer"
KEY_COEF = "steer_coefficient"
KEY_PROMPT = "steer_prompt"
KEY_SAMPLES = "steer_samples"
KEY_SCORER = "steer_scorer"
KEY_SWEEP = "steer_sweep"
KEY_SWEEP_SPEC = "steer_sweep_spec"  # the sweep on screen (its spec; the result comes from the cache)
KEY_SWEEP_CHART = "steer_sweep_chart"
KEY_SWEEP_LAYERS = "steer_sweep_layers"
KEY_SWEEP_COEFS = "steer_sweep_coefficients"
KEY_BATCH_FILE = "steer_batch_file"
KEY_BATCH_RUN = "steer_batch_run"
KEY_BATCH_SPEC = "steer_batch_spec"
KEY_PROJECT = "steer_projection_prompt"
KEY_MODE = "steer_mode"
KEY_LIVE = "steer_live"  # the streaming samples: their Stop button and the text they showed (ui/live.py)
SOURCES = {
    "dataset": "A built-in dataset",
    "pairs": "My own pairs (edit or upload)",
    "actadd": "One prompt pair (ActAdd)",
    "file": "A vector file",
}
METHODS = {"mean_difference": "Mean difference (CAA)", "pca": "First principal component (repeng)"}
SWEEP_LAYERS, SWEEP_COEFFICIENTS = (4, 6, 8, 10), "1, 2, 3"
GOALS = {"raise": "raised", "lower": "lowered", "both": "moved both ways"}
ADD_MODE = "add"
MODE_LABELS = {ADD_MODE: "Add", **{mode.name: mode.label for mode in MODES}}


def vector_from_file(model) -> SteeringVector | None:
    upload = st.file_uploader(
        "Steering vector (.safetensors from Steerscope, .gguf from llama.cpp/repeng, or .npy)",
        type=["safetensors", "gguf", "npy"],
        key=KEY_VECTOR_FILE,
    )
    if upload is None:
        return None
    layers = None
    if upload.name.lower().endswith(".npy"):  # a bare array carries no layers: ask (blank = one row per layer)
        text = st.text_input(
            f"Layers of its rows (e.g. 4, or 3, 4, 5; blank if it has one row for each of the {model.info.n_layers} layers)",
            key=KEY_VECTOR_LAYERS,
        )
        if text.strip():
            layers = list(parse_ints("layers", text, high=model.info.n_layers - 1))
    vector = load_vector(upload.name, upload.getvalue(), model, layers=layers)
    for warning in vector.check_for(model):
        st.warning(md_escape(warning))  # it can quote the file's metadata
    applied = applied_coefficient(upload.getvalue()) if upload.name.lower().endswith(".safetensors") else None
    if applied is not None:
        if st.session_state.get(KEY_VECTOR_SEEN) != upload.file_id:  # a new file: start the slider at 1, not ×coefficient again
            st.session_state[KEY_COEF] = 1.0
        st.info(
            f"This file already has coefficient {applied:+g} applied (it was exported as a vector × coefficient): "
            "the slider starts at 1, which steers exactly as it did when exported."
        )
    if upload.name.lower().endswith(".gguf"):
        st.info(
            f"llama.cpp numbers a control vector by the block whose *output* it is added to: its direction.N is "
            f"Steerscope's resid_post of layer N, the same tensor as resid_pre of layer N + 1. So a vector exported "
            f"here at layer {vector.layers[0] + 1} reads back as layer {vector.layers[0]} — the same place in the model."
        )
    st.session_state[KEY_VECTOR_SEEN] = upload.file_id
    return vector


def vector_from_pairs(model, source: str) -> tuple[SteeringVector, ContrastPairs | None, str]:
    """The vector made from pairs, with the pairs (None for one ActAdd pair) and where activations were read."""
    pairs: ContrastPairs | None = None
    left, right = st.columns(2)
    if source == "dataset":
        name = left.selectbox("Dataset", list(BUILT_IN), format_func=BUILT_IN.get, key=KEY_DATASET)
        pairs, key = built_in(name), (name,)
    elif source == "pairs":
        uploaded = left.file_uploader("Pairs CSV (columns positive,negative)", type=["csv"], key=KEY_PAIRS_FILE)
        starting = read_pairs(uploaded.name, uploaded.getvalue()) if uploaded is not None else built_in("sentiment")
        edited = st.data_editor(
            pd.DataFrame({"positive": starting.positive, "negative": starting.negative}),
            num_rows="dynamic",
            key=KEY_PAIRS,
            height=220,
            width="stretch",
        )
        # The rows as typed: no CSV round trip (its spreadsheet guard would turn "- I love it" into "'- I love it").
        rows = [
            (f"row {i + 1}", pos, neg) for i, (pos, neg) in enumerate(zip(edited["positive"], edited["negative"], strict=True))
        ]
        pairs = pairs_from_rows("The pairs table", rows, name="my pairs")
        key = (pairs.positive, pairs.negative)
    else:
        key = (left.text_input("Towards", "Love", key=KEY_ACTADD_POS), right.text_input("Away from", "Hate", key=KEY_ACTADD_NEG))
    method, position = "actadd", "last"
    if source != "actadd":
        method = right.radio("Method", list(METHODS), format_func=METHODS.get, key=KEY_METHOD)
        readings = {"last": "the last token", "mean": "the mean over tokens"}
        position = right.radio(
            "Read activations at", POSITIONS, format_func=readings.get, horizontal=True, key=KEY_POSITION, index=1
        )
    with st.spinner("Recording activations at every layer"):
        layers = tuple(range(model.info.n_layers))
        vector = cached_steering_vector(model, model.info.weights_sha256, source, key, pairs, method, position, layers)
    return vector, pairs, position


def vector_section(model) -> SteeringVector | None:
    st.subheader("1 · The vector")
    source = st.radio("Make it from", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=KEY_SOURCE)
    vector, pairs, position = None, None, "last"
    with shown_as_message("Building the vector"):
        if source == "file":
            vector = vector_from_file(model)
        else:
            vector, pairs, position = vector_from_pairs(model, source)
    if vector is not None:
        norms = vector.norms().values()
        st.caption(
            f"{md_escape(vector.source)} · {len(vector.layers)} layers · norm at each layer {min(norms):.1f}–{max(norms):.1f}"
        )
        if pairs is not None and len(pairs) > 1:
            consistency_line(model, vector, pairs, position)
    return vector


def consistency_line(model, vector: SteeringVector, pairs: ContrastPairs, position: str) -> None:
    """How well the training pairs agree with the vector at the tuned layer: a predictor of how reliably it steers."""
    layer = st.session_state.get(KEY_LAYER)
    layer = layer if layer in vector.layers else start_layer(vector.layers)
    with shown_as_message("Checking the pairs against the vector"):
        spec = PairConsistencyCheck(pairs, vector.at_layers([layer]), layer, position)
        consistency = run_with_progress(model, spec, f"Reading {len(pairs)} pairs at layer {layer}")
        st.markdown(
            f"**Pair consistency at layer {layer}:** mean cosine {consistency.mean:+.2f} of the {len(pairs)} pairs' "
            f"differences with the vector (spread {consistency.spread:.2f}, lowest {consistency.minimum:+.2f}) — "
            f"{consistency_reading(consistency)}"
        )
        with st.expander("Each pair's cosine"):
            st.plotly_chart(pair_consistency_plot(consistency))


def tune_section(model, vector: SteeringVector) -> SteeringEvaluation | None:
    """Sliders for the layer and coefficient, and the steered samples beside the unsteered ones."""
    st.subheader("2 · Tune it")
    layers = list(vector.layers)
    seed_input(KEY_LAYER, START_LAYER if START_LAYER in layers else layers[len(layers) // 5], allowed=layers)
    seed_input(KEY_COEF, START_COEFFICIENT)
    reward = trained_reward_model(model)
    scorers = [*SCORERS, "reward"] if reward is not None else list(SCORERS)
    controls = st.columns([2, 2, 2, 1])
    layer = controls[0].select_slider("Layer", options=layers, key=KEY_LAYER, persist_state="session")
    coefficient = controls[1].slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF, persist_state="session")
    label = {name: behaviour_scorer(model, name, reward) for name in scorers}
    scorer = controls[2].selectbox("Behaviour score", scorers, format_func=lambda s: label[s].name, key=KEY_SCORER)
    n_samples = controls[3].number_input("Samples", 1, 8, SteeringEvaluation.default("n_samples"), key=KEY_SAMPLES)
    seed_input(KEY_PROMPT, SteeringEvaluation.default("prompts")[0])
    prompt = st.text_input("Prompt", key=KEY_PROMPT, persist_state="session")
    warn_unknown_text(model, prompt)
    with shown_as_message("Generating"):
        spec = SteeringEvaluation(
            vector.at_layers([layer]), layer, float(coefficient), scorer, reward if scorer == "reward" else None,
            prompts=(prompt,), n_samples=int(n_samples),
        )  # fmt: skip
        gen = generation_model(model)  # the bf16 copy in fast mode
        result = tuned_samples(gen, spec)
        if result is None:
            return spec  # stopped: what had streamed stays on screen
        show_tuned(result, label[scorer].unit, prompt, layer, coefficient)
        keep_run(gen, spec, result, key="steer_keep", label="this setting's samples")
        return spec
    return None


def tuned_samples(gen, spec: SteeringEvaluation):
    """``spec``'s evaluation: a lookup when these settings ran before; else the unsteered baseline (computed once for
    these prompts, samples, seeds and scorer) beside the steered samples streaming in token by token. None if the
    user pressed Stop (the text so far stays on screen)."""
    if is_cached(gen, spec):
        return cached_run(gen, spec)
    prompt = spec.prompts[0]
    if stop_requested(KEY_LIVE):
        shown = last_streamed(KEY_LIVE)
        plain_col, steered_col = st.columns(2)
        steered_col.markdown(f"**Steered** (layer {spec.layer}, coefficient {spec.coefficient:+g}) — stopped")
        for text in shown.texts if shown is not None and shown.key == spec.digest() else ():
            steered_col.text(prompt + text)
        st.info("Stopped. Move a slider, or press Generate, to write again.")
        st.button("Generate", key=f"{KEY_LIVE}_again", type="primary")
        return None
    baseline = run_with_progress(gen, UnsteeredSamples.of(spec), "Unsteered samples (once for this prompt, seeds and length)")
    area = st.empty()  # the streaming layout, replaced by the finished result
    with area.container():
        plain_col, steered_col = st.columns(2)
        plain_col.markdown("**Unsteered**")
        steered_col.markdown(f"**Steered** (layer {spec.layer}, coefficient {spec.coefficient:+g}) — writing…")
        for text in baseline.texts:
            plain_col.text(prompt + text)
        slots = [steered_col.empty() for _ in baseline.texts]
        live = start_steered(gen, spec)
        stream_texts(KEY_LIVE, spec.digest(), live.events(), slots, [prompt] * len(slots), live.cancel)
    result = live.evaluation(gen, baseline)
    store_run(gen, spec, result)  # a rerun with these settings is a lookup
    area.empty()
    return result


def show_tuned(result, unit: str, prompt: str, layer: int, coefficient: float) -> None:
    numbers = st.columns(4)
    if result.behaviour_is_reliable:
        numbers[0].metric(
            f"Behaviour ({unit})", f"{result.steered.mean_behaviour:+.3f}", f"{result.behaviour_gain:+.3f} vs unsteered"
        )
    else:  # gibberish can score anything (VADER gave word salad +0.92): not a success to show in green
        numbers[0].metric(
            f"Behaviour ({unit})",
            f"{result.steered.mean_behaviour:+.3f}",
            f"unreliable: the text is damaged (perplexity ×{result.perplexity_ratio:.1f})",
            delta_color="off",
            delta_arrow="off",
        )
    numbers[1].metric(
        "Perplexity under the unsteered model",
        f"{result.steered.mean_perplexity:.1f}",
        f"x{result.perplexity_ratio:.2f} unsteered",
        delta_color="inverse",
    )
    distinct_change = 100 * (result.steered.mean_distinct2 - result.unsteered.mean_distinct2)
    numbers[2].metric("Distinct bigrams", f"{100 * result.steered.mean_distinct2:.0f}%", f"{distinct_change:+.0f} pts")
    numbers[3].metric("Time", f"{result.seconds:.1f} s")
    plain_col, steered_col = st.columns(2)
    plain_col.markdown("**Unsteered**")
    steered_col.markdown(f"**Steered** (layer {layer}, coefficient {coefficient:+g})")
    for unsteered, steered in zip(result.unsteered.texts, result.steered.texts, strict=True):
        plain_col.text(prompt + unsteered)
        steered_col.text(prompt + steered)


def _apply_clicked_cell(result: SweepResult) -> None:
    points = [p for p in st.session_state[KEY_SWEEP_CHART].selection.points if "point_index" in p]
    if points:
        layer_i, coef_i = divmod(int(points[0]["point_index"]), len(result.coefficients))
        st.session_state[KEY_LAYER] = result.layers[layer_i]
        st.session_state[KEY_COEF] = float(result.coefficients[coef_i])


def sweep_section(model, vector: SteeringVector, tuned: SteeringEvaluation) -> None:
    """Every layer x coefficient with the tuned scorer and samples; the sweep on screen stays until the next one."""
    st.subheader("3 · Sweep layers × coefficients")
    cols = st.columns([3, 3, 1])
    layers = cols[0].multiselect(
        "Layers", list(vector.layers), default=[la for la in SWEEP_LAYERS if la in vector.layers] or list(vector.layers[:3]),
        key=KEY_SWEEP_LAYERS,
    )  # fmt: skip
    coefficient_text = cols[1].text_input("Coefficients", SWEEP_COEFFICIENTS, key=KEY_SWEEP_COEFS)
    if cols[2].button("Run sweep", type="primary", key=KEY_SWEEP, disabled=not layers):
        with shown_as_message("The sweep"):
            coefficients = parse_numbers("coefficients", coefficient_text)  # "nan", "inf" and "x" refused here
            # Kept with what made it: the vector and scorer may change after the sweep, its record must not.
            st.session_state[KEY_SWEEP_SPEC] = SteeringSweep(
                vector.at_layers(sorted(layers)), tuple(sorted(layers)), coefficients, tuned.scorer, tuned.reward_model,
                n_samples=tuned.n_samples,
            )  # fmt: skip
    spec, swept = stored_result(generation_model(model), KEY_SWEEP_SPEC, "The sweep")
    if swept is None:
        return
    chart = sweep_heatmaps(swept)
    st.plotly_chart(chart, key=KEY_SWEEP_CHART, on_select=functools.partial(_apply_clicked_cell, swept), selection_mode="points")
    best = swept.recommended()
    if best is None:
        st.warning(
            f"No setting {GOALS[swept.goal]} the behaviour while keeping perplexity within {swept.max_perplexity_ratio:g}x: "
            "try smaller coefficients or other layers."
        )
    else:
        st.success(
            f"Recommended: layer {best.layer}, coefficient {best.coefficient:g} — "
            f"behaviour {best.behaviour - swept.baseline.mean_behaviour:+.3f}, "
            f"perplexity x{best.perplexity_ratio:.2f}. Click any cell above to apply it."
        )
    st.plotly_chart(pareto_plot(swept))
    st.caption(
        f"{len(swept.cells)} cells in {swept.seconds:.0f} s "
        f"({60 * len(swept.cells) / max(swept.seconds, 1e-9):.1f} cells/minute); "
        f"each cell: {len(swept.baseline.texts)} samples of {spec.max_new_tokens} tokens, the same seeds in every cell."
    )
    csv = functools.partial(to_csv_bytes, swept.to_frame())
    st.download_button("Download the sweep (CSV)", data=csv, file_name="steering_sweep.csv", on_click="ignore")
    keep_run(generation_model(model), spec, swept, key="steer_sweep_keep", label="the sweep")


def meaning_section(model, vector: SteeringVector, layer: int) -> None:
    st.subheader("4 · What the vector means")
    with shown_as_message("Reading the vector"):
        st.plotly_chart(token_effect_bars(token_effects(model, vector, layer)))
        check = unembedding_check(cached_run(model, LogitLensRun(LENS_PROBE)), vector, layer)
        if not check.holds:
            st.info(
                f"Read with a grain of salt: at layer {layer} the residual stream does not yet speak the unembedding's "
                f"language. Decoded through the final norm and unembedding (the logit lens), it gives the model's own "
                f"next token at only {100 * check.agreement:.0f}% of the positions of a neutral text (under "
                f"{100 * READING_HOLDS:.0f}%), so the tokens above may be mostly noise. The projection below holds at any "
                "layer; a later layer's reading says more."
            )
        project_prompt = st.text_input(
            "Where does the concept light up in this text?", "What a wonderful, sunny day. I hate the rain.", key=KEY_PROJECT
        )
        projection = token_projections(model, vector, layer, project_prompt)
        peak = float(abs(projection.values).max()) or 1.0
        token_chips(
            list(projection.tokens),
            weights=[float(v) / peak for v in projection.values],
            titles=[f"{v:+.2f}" for v in projection.values],
        )
        st.caption(f"Each token's layer-{layer} activation projected on the direction (purple: along it; orange: against it).")
        if len(vector.layers) > 1:
            st.plotly_chart(cosine_heatmap(layer_cosines(vector), vector.layers))


def export_section(vector: SteeringVector, layer: int, coefficient: float) -> None:
    st.subheader("5 · Take it with you")
    chosen = vector.at_layers([layer]) * coefficient
    cols = st.columns(3)
    cols[0].download_button(
        "Vector at this layer × coefficient (.safetensors)",
        data=chosen.to_safetensors(coefficient_applied=coefficient),
        file_name=f"steering_L{layer}.safetensors",
        on_click="ignore",
    )
    with shown_as_message("Exporting for llama.cpp"):
        cols[1].download_button(
            "For llama.cpp (.gguf control vector)", data=chosen.to_gguf, file_name=f"steering_L{layer}.gguf", on_click="ignore"
        )
    cols[2].download_button(
        "All layers, unscaled (.safetensors)",
        data=vector.to_safetensors(),
        file_name="steering_all_layers.safetensors",
        on_click="ignore",
    )
    st.caption(
        f"In llama.cpp: `llama-cli -m model.gguf --control-vector steering_L{layer}.gguf` (the coefficient is already applied; "
        "llama.cpp adds direction.N to block N's output, which is Steerscope's resid_pre of block N+1)."
    )
    save_to_library(vector, layer, coefficient)


def save_to_library(vector: SteeringVector, layer: int, coefficient: float) -> None:
    """The unscaled vector under a name in the library the server reads (`make serve`, docs/SERVING.md)."""
    left, right = st.columns([3, 1])
    name = left.text_input("Name in the vector library", "my_vector", key=KEY_LIBRARY_NAME)
    if right.button("Save to library", key=KEY_LIBRARY_SAVE):
        with shown_as_message("Saving to the vector library"):
            entry = VectorLibrary().save(vector, name)
            st.success(
                f"Saved as `{entry.name}` (a checked safe name). Any OpenAI client of the server can use it now: "
                f'`"steering": [{{"vector": "{entry.name}", "coefficient": {coefficient:g}, "layers": [{layer}]}}]`'
            )


def batch_section(model, tuned: SteeringEvaluation) -> None:
    """The tuned setting on every prompt of a file; the table stays on screen (and keepable) after reruns."""
    st.subheader("6 · Evaluate on a file of prompts")
    batch_file = st.file_uploader(
        "Prompts (CSV/TSV with a 'prompt' column, TXT one per line, or JSONL)",
        type=["csv", "tsv", "txt", "jsonl"],
        key=KEY_BATCH_FILE,
    )
    if batch_file is not None:
        try:
            prompts = read_prompt_file(batch_file.name, batch_file.getvalue(), count_tokens=lambda p: len(tokenize(model, p)))
        except SteerscopeError as exc:
            st.error(md_escape(str(exc)))
        else:
            st.caption(md_escape(prompts.summary()))
            label = f"Steer {len(prompts.rows)} prompts at layer {tuned.layer}, coefficient {tuned.coefficient:+g}"
            if st.button(label, key=KEY_BATCH_RUN):
                with shown_as_message("Batch evaluation"):
                    st.session_state[KEY_BATCH_SPEC] = SteeringBatchEvaluation(
                        tuned.vector, tuned.layer, tuned.coefficient, tuple(r.prompt for r in prompts.rows), tuned.scorer,
                        tuned.reward_model,
                    )  # fmt: skip
    spec, batch = stored_result(generation_model(model), KEY_BATCH_SPEC, "Batch evaluation")
    if batch is None:
        return
    frame = batch.to_frame()
    unit = behaviour_scorer(model, spec.scorer, spec.reward_model).unit
    st.success(md_escape(batch_summary(batch, unit)))
    if len(batch.prompts) > 1:
        effects_line(batch, unit, "raise" if spec.coefficient >= 0 else "lower")
    st.caption(f"{len(frame)} prompts at layer {spec.layer}, coefficient {spec.coefficient:+g}, scored by {batch.scorer}.")
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download texts and scores (CSV)", data=to_csv_bytes(frame), file_name="steering_batch.csv", on_click="ignore"
    )
    keep_run(generation_model(model), spec, batch, key="steer_batch_keep", label="the file of prompts")


def effects_line(batch, unit: str, goal: str) -> None:
    """The effect over prompts with its t-interval, and the share of prompts moved the wrong way."""
    with shown_as_message("Effects per prompt"):
        effects = per_prompt_effects(batch, goal=goal)
        st.markdown(
            f"**Effect per prompt:** mean {effects.mean_effect:+.3f} {md_escape(unit)}, "
            f"{100 * effects.confidence:.0f}% confidence interval [{effects.low:+.3f}, {effects.high:+.3f}] over "
            f"{effects.n_prompts} prompts (Student t; each prompt counts once). "
            f"**{100 * effects.anti_steerable_fraction:.0f}%** of the prompts were moved the wrong way "
            f"(the goal is to {goal} the score): anti-steerable."
        )


def add_mode(model, vector: SteeringVector) -> None:
    """Today's sections 2–6: tune, sweep, meaning, export, a file of prompts."""
    with st.container(border=True):
        tuned = tune_section(model, vector)
    if tuned is None:
        st.stop()
    with st.container(border=True):
        sweep_section(model, vector, tuned)
    with st.container(border=True):
        meaning_section(model, vector, tuned.layer)
    with st.container(border=True):
        export_section(vector, tuned.layer, tuned.coefficient)
    with st.container(border=True):
        batch_section(model, tuned)


st.title("Steering")
st.caption(
    "Make the model more X: build a direction from contrasting text, add it to the residual stream while the model "
    "writes, and see how much it changes the behaviour and what it costs in fluency."
)
model = require_model()
with st.container(border=True):
    vector = vector_section(model)
if vector is None:
    st.stop()
# A link can open a mode directly (/steering?mode=rotate); otherwise the page starts in Add.
linked_mode = st.query_params.get("mode", ADD_MODE)
seed_input(KEY_MODE, linked_mode if linked_mode in MODE_LABELS else ADD_MODE, allowed=list(MODE_LABELS))
mode = st.segmented_control(
    "Use it to", list(MODE_LABELS), format_func=MODE_LABELS.get, required=True, key=KEY_MODE, persist_state="session"
)
if mode == ADD_MODE:
    add_mode(model, vector)
else:  # only the chosen mode's section runs: the others compute nothing
    chosen = next(m for m in MODES if m.name == mode)
    with st.container(border=True):
        chosen.draw(model, vector)
