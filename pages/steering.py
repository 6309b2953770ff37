"""Steering: build an activation-addition vector, tune it live, measure the effect and the damage, export it."""

from __future__ import annotations

import functools
import hashlib

import pandas as pd
import streamlit as st

from interp.errors import SteerscopeError
from interp.spreadsheet import to_csv_bytes
from interp.prompt_files import read_prompt_file
from interp.records import Bundle
from interp.tokens import tokenize
from steering.datasets import BUILT_IN, ContrastPairs, built_in, read_pairs
from steering.make import POSITIONS, actadd, mean_difference, pca_direction
from steering.meaning import layer_cosines, token_effects, token_projections
from steering.plots import cosine_heatmap, pareto_plot, sweep_heatmaps, token_effect_bars
from steering.reward import reward_scorer
from steering.scores import SCORERS
from steering.sweep import NEUTRAL_PROMPTS, Evaluation, SweepResult, evaluate, sweep
from steering.vector import SteeringVector, load_vector
from ui.errors import shown_as_message
from ui.model import require_model
from ui.records import keep_run
from ui.render import md_escape, token_chips

KEY_SOURCE = "steer_source"
KEY_SWEEP_RESULT = "steer_sweep_result"
KEY_DATASET = "steer_dataset"
KEY_PAIRS = "steer_pairs_editor"
KEY_PAIRS_FILE = "steer_pairs_file"
KEY_VECTOR_FILE = "steer_vector_file"
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
KEY_SWEEP_CHART = "steer_sweep_chart"
KEY_SWEEP_LAYERS = "steer_sweep_layers"
KEY_SWEEP_COEFS = "steer_sweep_coefficients"
KEY_BATCH_FILE = "steer_batch_file"
KEY_BATCH_RUN = "steer_batch_run"
KEY_PROJECT = "steer_projection_prompt"
SOURCES = {
    "dataset": "A built-in dataset",
    "pairs": "My own pairs (edit or upload)",
    "actadd": "One prompt pair (ActAdd)",
    "file": "A vector file",
}
METHODS = {"mean_difference": "Mean difference (CAA)", "pca": "First principal component (repeng)"}


@st.cache_data(max_entries=16, show_spinner=False)
def _build(
    _model,
    weights: str,
    source: str,
    key: tuple,
    _pairs: ContrastPairs | None,
    method: str,
    position: str,
    layers: tuple[int, ...],
) -> SteeringVector:
    if source == "actadd":
        return actadd(_model, key[0], key[1], layers)
    maker = mean_difference if method == "mean_difference" else pca_direction
    return maker(_model, _pairs, layers, position=position)


def _kept_scorer(scorer_name: str) -> dict:
    """A run scored by the reward model keeps that model with it, so the run can be replayed later."""
    return {"reward_model": st.session_state["rlhf_state"]["reward"]} if scorer_name == "reward" else {}


def _scorers(model) -> dict:
    """The built-in scorers, plus the reward model if one was trained for this model (Reward & RLHF page)."""
    scorers = dict(SCORERS)
    reward = st.session_state.get("rlhf_state", {}).get("reward")
    if reward is not None and reward.base_weights_sha256 == model.info.weights_sha256:
        scorers["reward"] = reward_scorer(model, reward)
    return scorers


@st.cache_data(max_entries=64, show_spinner=False)
def _evaluate(
    _model,
    _vector,
    vector_key: str,
    layer: int,
    coefficient: float,
    prompts: tuple,
    scorer: str,
    n_samples: int,
    seed: int,
    _scorer=None,
) -> Evaluation:
    return evaluate(
        _model,
        _vector,
        layer,
        coefficient,
        _scorer or SCORERS[scorer],
        prompts=prompts,
        n_samples=n_samples,
        max_new_tokens=30,
        seed=seed,
    )


def _vector_key(vector: SteeringVector) -> str:
    return hashlib.sha256(vector.to_safetensors()).hexdigest()[:16]


def _apply_clicked_cell(result: SweepResult) -> None:
    points = [p for p in st.session_state[KEY_SWEEP_CHART].selection.points if "point_index" in p]
    if points:
        index = int(points[0]["point_index"])
        layer_i, coef_i = divmod(index, len(result.coefficients))
        st.session_state[KEY_LAYER] = result.layers[layer_i]
        st.session_state[KEY_COEF] = float(result.coefficients[coef_i])


st.title("Steering")
st.caption(
    "Make the model more X: build a direction from contrasting text, add it to the residual stream while the model "
    "writes, and see how much it changes the behaviour and what it costs in fluency."
)
model = require_model()
info = model.info
all_layers = tuple(range(info.n_layers))

# ---------------------------------------------------------------------------------------------- the vector
vector: SteeringVector | None = None
with st.container(border=True):
    st.subheader("1 · The vector")
    source = st.radio("Make it from", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=KEY_SOURCE)
    with shown_as_message("Building the vector"):
        if source == "file":
            upload = st.file_uploader(
                "Steering vector (.safetensors from Steerscope, .gguf from llama.cpp/repeng, or .npy)",
                type=["safetensors", "gguf", "npy"],
                key=KEY_VECTOR_FILE,
            )
            if upload is not None:
                vector = load_vector(upload.name, upload.getvalue(), model)
                for warning in vector.check_for(model):
                    st.warning(warning)
        else:
            pairs: ContrastPairs | None = None
            key: tuple = ()
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
                rows = edited.dropna()
                pairs = read_pairs("edited pairs", to_csv_bytes(rows[["positive", "negative"]]), name="my pairs")
                key = (pairs.positive, pairs.negative)
            else:
                positive = left.text_input("Towards", "Love", key=KEY_ACTADD_POS)
                negative = right.text_input("Away from", "Hate", key=KEY_ACTADD_NEG)
                key = (positive, negative)
            method, position = "actadd", "last"
            if source != "actadd":
                method = right.radio("Method", list(METHODS), format_func=METHODS.get, key=KEY_METHOD)
                position = right.radio(
                    "Read activations at",
                    POSITIONS,
                    format_func={"last": "the last token", "mean": "the mean over tokens"}.get,
                    horizontal=True,
                    key=KEY_POSITION,
                    index=1,
                )
            with st.spinner("Recording activations at every layer"):
                vector = _build(model, info.weights_sha256, source, key, pairs, method, position, all_layers)
    if vector is not None:
        st.caption(
            f"{md_escape(vector.source)} · {len(vector.layers)} layers · norm at each layer "
            f"{min(vector.norms().values()):.1f}–{max(vector.norms().values()):.1f}"
        )
if vector is None:
    st.stop()

# ---------------------------------------------------------------------------------------------- live tuning
with st.container(border=True):
    st.subheader("2 · Tune it")
    layer_options = [layer for layer in vector.layers]
    # Measured on SmolLM2 with the built-in sentiment vector (docs/PERFORMANCE.md): layer 4,
    # coefficient 3 moves VADER both ways by 0.3+ while keeping perplexity within 2x.
    st.session_state.setdefault(KEY_LAYER, 4 if 4 in layer_options else layer_options[len(layer_options) // 5])
    st.session_state.setdefault(KEY_COEF, 3.0)
    controls = st.columns([2, 2, 2, 1])
    layer = controls[0].select_slider("Layer", options=layer_options, key=KEY_LAYER)
    coefficient = controls[1].slider("Coefficient", -8.0, 8.0, step=0.5, key=KEY_COEF)
    scorers = _scorers(model)
    scorer_name = controls[2].selectbox("Behaviour score", list(scorers), format_func=lambda s: scorers[s].name, key=KEY_SCORER)
    n_samples = controls[3].number_input("Samples", 1, 8, 2, key=KEY_SAMPLES)
    prompt = st.text_input("Prompt", NEUTRAL_PROMPTS[0], key=KEY_PROMPT)
    with shown_as_message("Generating"), st.spinner("Generating unsteered and steered samples with the same seeds"):
        reward_key = scorer_name if scorer_name != "reward" else f"reward-{id(scorers['reward'])}"
        result = _evaluate(
            model,
            vector,
            _vector_key(vector),
            layer,
            float(coefficient),
            (prompt,),
            reward_key,
            int(n_samples),
            0,
            _scorer=scorers[scorer_name],
        )
        numbers = st.columns(4)
        numbers[0].metric(
            f"Behaviour ({scorers[scorer_name].unit})",
            f"{result.steered.mean_behaviour:+.3f}",
            f"{result.behaviour_gain:+.3f} vs unsteered",
        )
        numbers[1].metric(
            "Perplexity under the unsteered model",
            f"{result.steered.mean_perplexity:.1f}",
            f"x{result.perplexity_ratio:.2f} unsteered",
            delta_color="inverse",
        )
        numbers[2].metric(
            "Distinct bigrams",
            f"{100 * result.steered.mean_distinct2:.0f}%",
            f"{100 * (result.steered.mean_distinct2 - result.unsteered.mean_distinct2):+.0f} pts",
        )
        numbers[3].metric("Time", f"{result.seconds:.1f} s")
        plain_col, steered_col = st.columns(2)
        plain_col.markdown("**Unsteered**")
        steered_col.markdown(f"**Steered** (layer {layer}, coefficient {coefficient:+g})")
        for i in range(len(result.steered.texts)):
            plain_col.text(prompt + result.unsteered.texts[i])
            steered_col.text(prompt + result.steered.texts[i])
        keep_run(
            model,
            "steering_evaluation",
            {"prompts": [prompt]},
            {
                "layer": layer,
                "coefficient": float(coefficient),
                "scorer": scorer_name,
                "n_samples": int(n_samples),
                "max_new_tokens": 30,
            },
            Bundle({"vector": vector.at_layers([layer]), "evaluation": result, **_kept_scorer(scorer_name)}),
            key="steer_keep",
            seed=0,
        )

# ---------------------------------------------------------------------------------------------- the sweep
with st.container(border=True):
    st.subheader("3 · Sweep layers × coefficients")
    sweep_cols = st.columns([3, 3, 1])
    default_layers = [layer for layer in (4, 6, 8, 10) if layer in vector.layers] or list(vector.layers[:3])
    sweep_layers = sweep_cols[0].multiselect("Layers", layer_options, default=default_layers, key=KEY_SWEEP_LAYERS)
    coefficient_text = sweep_cols[1].text_input("Coefficients", "1, 2, 3", key=KEY_SWEEP_COEFS)
    goal = "raise"
    if sweep_cols[2].button("Run sweep", type="primary", key=KEY_SWEEP, disabled=not sweep_layers):
        try:
            coefficients = [float(c) for c in coefficient_text.replace(";", ",").split(",") if c.strip()]
        except ValueError:
            st.error("Coefficients must be numbers separated by commas, like 1, 2, 3.")
            coefficients = []
        if coefficients:
            bar = st.progress(0.0, text="Sampling the unsteered baseline")
            with shown_as_message("The sweep"):
                swept = sweep(
                    model,
                    vector,
                    scorers[scorer_name],
                    layers=sorted(sweep_layers),
                    coefficients=coefficients,
                    n_samples=int(n_samples),
                    goal=goal,
                    progress=lambda done, total: bar.progress(done / total, text=f"Cell {done} of {total}"),
                )
                # Kept with what made it: the vector and scorer may change after the sweep, its record must not.
                st.session_state[KEY_SWEEP_RESULT] = {
                    "sweep": swept,
                    "vector": vector,
                    "scorer": scorer_name,
                    "n_samples": int(n_samples),
                    **_kept_scorer(scorer_name),
                }
            bar.empty()
    swept_with: dict | None = st.session_state.get(KEY_SWEEP_RESULT)
    swept: SweepResult | None = swept_with["sweep"] if swept_with else None
    if swept is not None:
        st.plotly_chart(
            sweep_heatmaps(swept),
            key=KEY_SWEEP_CHART,
            on_select=functools.partial(_apply_clicked_cell, swept),
            selection_mode="points",
        )
        best = swept.recommended()
        if best is None:
            st.warning(
                f"No setting raised the behaviour while keeping perplexity within {swept.max_perplexity_ratio:g}x: "
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
            f"{len(swept.cells)} cells in {swept.seconds:.0f} s ({60 * len(swept.cells) / swept.seconds:.1f} cells/minute); "
            f"each cell: {len(swept.baseline.texts)} samples of 30 tokens, the same seeds in every cell."
        )
        st.download_button(
            "Download the sweep (CSV)",
            data=lambda: to_csv_bytes(swept.to_frame()),
            file_name="steering_sweep.csv",
            on_click="ignore",
        )
        sweep_settings = {
            "layers": list(swept.layers),
            "coefficients": list(swept.coefficients),
            "scorer": swept_with["scorer"],
            "n_samples": swept_with["n_samples"],
            "max_new_tokens": 30,
            "goal": swept.goal,
        }
        keep_run(
            model,
            "steering_sweep",
            {"prompts": list(NEUTRAL_PROMPTS)},
            sweep_settings,
            Bundle({key: value for key, value in swept_with.items() if key not in ("scorer", "n_samples")}),
            key="steer_sweep_keep",
            seed=0,
        )

# ---------------------------------------------------------------------------------------------- meaning and export
with st.container(border=True):
    st.subheader("4 · What the vector means")
    with shown_as_message("Reading the vector"):
        st.plotly_chart(token_effect_bars(token_effects(model, vector, layer)))
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

with st.container(border=True):
    st.subheader("5 · Take it with you")
    chosen = vector.at_layers([layer]) * coefficient
    export_cols = st.columns(3)
    export_cols[0].download_button(
        "Vector at this layer × coefficient (.safetensors)",
        data=chosen.to_safetensors(),
        file_name=f"steering_L{layer}.safetensors",
        on_click="ignore",
    )
    with shown_as_message("Exporting for llama.cpp"):
        export_cols[1].download_button(
            "For llama.cpp (.gguf control vector)",
            data=lambda: chosen.to_gguf(),
            file_name=f"steering_L{layer}.gguf",
            on_click="ignore",
        )
    export_cols[2].download_button(
        "All layers, unscaled (.safetensors)",
        data=vector.to_safetensors(),
        file_name="steering_all_layers.safetensors",
        on_click="ignore",
    )
    st.caption(
        f"In llama.cpp: `llama-cli -m model.gguf --control-vector steering_L{layer}.gguf` (the coefficient is already applied; "
        "llama.cpp adds direction.N to block N's output, which is Steerscope's resid_pre of block N+1)."
    )

# ---------------------------------------------------------------------------------------------- batch evaluation
with st.container(border=True):
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
            st.error(str(exc))
            prompts = None
        if prompts is not None:
            st.caption(md_escape(prompts.summary()))
            if st.button(f"Steer {len(prompts.rows)} prompts at layer {layer}, coefficient {coefficient:+g}", key=KEY_BATCH_RUN):
                with shown_as_message("Batch evaluation"), st.spinner("Sampling every prompt unsteered and steered"):
                    batch = evaluate(
                        model,
                        vector,
                        layer,
                        float(coefficient),
                        scorers[scorer_name],
                        prompts=[r.prompt for r in prompts.rows],
                        n_samples=1,
                        max_new_tokens=30,
                    )
                    frame = pd.DataFrame(
                        {
                            "prompt": batch.prompts,
                            "unsteered": batch.unsteered.texts,
                            "steered": batch.steered.texts,
                            "behaviour_unsteered": batch.unsteered.behaviour,
                            "behaviour_steered": batch.steered.behaviour,
                            "perplexity_unsteered": batch.unsteered.perplexity,
                            "perplexity_steered": batch.steered.perplexity,
                        }
                    )
                    st.dataframe(frame, hide_index=True)
                    st.download_button(
                        "Download texts and scores (CSV)",
                        data=to_csv_bytes(frame),
                        file_name="steering_batch.csv",
                        on_click="ignore",
                    )
