"""Features: which SAE features fire on your prompt, what each one means, which drive a prediction, steer with one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from features.corpus import CORPORA
from features.files import SAEFolder, save_sae
from features.runs import (
    FeatureAttributionRun,
    FeatureDashboardRun,
    FeatureSteeringRun,
    FeatureVsVectorRun,
    PromptFeaturesRun,
    SAEQualityRun,
    SAETraining,
    sae_at,
)
from features.shipped import SHIPPED
from interp.records.record import data_folder
from steering import BUILT_IN
from steering.runs import SCORER_NAMES
from ui.cached import cached_run
from ui.errors import shown_as_message
from ui.feature_labels import feature_label, rename_feature
from ui.model import require_model
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, token_chips
from ui.state import seed_input
from ui.steering_modes.common import stoppable_result

KEY_SOURCE = "feat_source"
KEY_FOLDER = "feat_folder"
KEY_PROMPT = "feat_prompt"
KEY_LATENT = "feat_latent"
KEY_LABEL = "feat_label"
KEY_SEARCH = "feat_search_token"
KEY_ATTR_PROMPT = "feat_attr_prompt"
KEY_ATTR_TARGET = "feat_attr_target"
KEY_STEER_MODE = "feat_steer_mode"
KEY_STEER_VALUE = "feat_steer_value"
KEY_STEER_SCORER = "feat_steer_scorer"
KEY_STEER_RUN = "feat_steer_run"
KEY_STEER_SPEC = "feat_steer_spec"
KEY_TRAIN_LAYER = "feat_train_layer"
KEY_TRAIN_WIDTH = "feat_train_width"
KEY_TRAIN_K = "feat_train_k"
KEY_TRAIN_TOKENS = "feat_train_tokens"
KEY_TRAIN_CORPUS = "feat_train_corpus"
KEY_TRAIN_RUN = "feat_train"  # the Train button; its Stop button is f"{KEY_TRAIN_RUN}_stop"
KEY_TRAIN_SPEC = "feat_train_spec"
KEY_MEASURE = "feat_measure"
KEY_MEASURED = "feat_measured"
KEY_COMPARE_PAIRS = "feat_compare_pairs"
KEY_COMPARE_RUN = "feat_compare"
KEY_COMPARE_SPEC = "feat_compare_spec"
SHIPPED_CHOICE = "Shipped: SmolLM2-135M, layer 9, 4096 features"
FOLDER_CHOICE = "An SAE folder on this machine"

st.title("Features")
st.markdown(
    "A sparse autoencoder (SAE) rewrites one layer's residual stream as a few active **features** out of thousands; "
    "each is a direction with a meaning you can read off the text it fires on. Trust them as far as the SAE's "
    "quality figures below allow."
)


def choose_sae(model) -> SAEFolder | None:
    """The SAE to look through: the shipped one or a folder; its quality card."""
    source = st.radio("SAE", [SHIPPED_CHOICE, FOLDER_CHOICE], key=KEY_SOURCE, horizontal=True, persist_state="session")
    folder = str(SHIPPED)
    if source == FOLDER_CHOICE:
        folder = st.text_input("Folder (cfg.json with sae.safetensors or sae_weights.safetensors)", key=KEY_FOLDER,
                               persist_state="session").strip()  # fmt: skip
        if not folder:
            st.info("Type the folder of an SAE trained for this model (sparsify, SAELens or Steerscope layout).")
            return None
    with shown_as_message("Loading the SAE"):
        loaded = sae_at(folder, model)
        quality_card(model, loaded)
        return loaded
    return None


def training_section(model) -> None:
    """Train an SAE for the loaded model: progress, Stop (the checkpoint keeps the steps), Train again to continue."""
    with st.expander("Train an SAE for this model", expanded=KEY_TRAIN_SPEC in st.session_state):
        cols = st.columns(5)
        seed_input(KEY_TRAIN_LAYER, min(9, model.info.n_layers - 1))
        layer = cols[0].number_input("Layer (residual stream before it)", 0, model.info.n_layers - 1, key=KEY_TRAIN_LAYER,
                                     persist_state="session")  # fmt: skip
        seed_input(KEY_TRAIN_WIDTH, SAETraining.default("d_sae"))
        width = cols[1].number_input("Features", 16, 65536, step=256, key=KEY_TRAIN_WIDTH, persist_state="session")
        seed_input(KEY_TRAIN_K, SAETraining.default("k"))
        k = cols[2].number_input("k (active per token)", 1, 512, key=KEY_TRAIN_K, persist_state="session")
        seed_input(KEY_TRAIN_TOKENS, SAETraining.default("n_tokens"))
        tokens = cols[3].number_input("Training tokens", 1_000, 100_000_000, step=100_000, key=KEY_TRAIN_TOKENS,
                                      persist_state="session")  # fmt: skip
        seed_input(KEY_TRAIN_CORPUS, SAETraining.default("corpus"))
        corpus = cols[4].selectbox("Text", CORPORA, key=KEY_TRAIN_CORPUS, persist_state="session")
        st.caption("About 1,300 tokens/s on 2 CPU cores for SmolLM2 at layer 9 (2 M tokens ≈ 26 min). Stop keeps a "
                   "checkpoint; pressing Train with the same settings continues it.")  # fmt: skip
        if st.button("Train", type="primary", key=KEY_TRAIN_RUN):
            with shown_as_message("Training"):
                settings = dict(hook_name=f"blocks.{int(layer)}.hook_resid_pre", d_sae=int(width), k=int(k),
                                corpus=corpus, n_tokens=int(tokens))  # fmt: skip
                st.session_state[KEY_TRAIN_SPEC] = SAETraining(**settings, checkpoint=str(training_folder(model, settings)))
        spec, trained = stoppable_result(model, KEY_TRAIN_SPEC, KEY_TRAIN_RUN, "SAE training",
                                         stopped="its checkpoint keeps the steps done; press Train to continue.")  # fmt: skip
        if trained is None:
            return
        with shown_as_message("Saving the SAE"):
            out = Path(spec.checkpoint) / "sae"
            save_sae(trained.sae, out, trained.card() | {"settings": spec.settings()})
            st.success(md_escape(f"{trained.quality.describe()}. Saved in {out}; open it above as a folder "
                                 "(python -m features index FOLDER builds its dashboards)."))  # fmt: skip
            keep_run(model, spec, trained, key="feat_train_keep")


def training_folder(model, settings: dict) -> Path:
    """Where a training's checkpoint and SAE go: one folder per model and settings, under $STEERSCOPE_DATA."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([model.info.weights_sha256, settings], sort_keys=True).encode()).hexdigest()[:12]
    return data_folder() / "features" / "training" / digest


def quality_card(model, loaded: SAEFolder) -> None:
    sae, metrics = loaded.sae, loaded.card.get("metrics", {})
    st.caption(md_escape(f"{sae.describe()}; {loaded.layout} layout."))
    if not metrics:
        st.warning("This SAE has no card with quality figures; measure it before trusting its features.")
        if st.button("Measure it (32 contexts of pydoc-topics)", key=KEY_MEASURE) or KEY_MEASURED in st.session_state:
            st.session_state[KEY_MEASURED] = True
            with shown_as_message("Measuring the SAE"):
                quality = run_with_progress(model, SAEQualityRun(sae_folder=str(loaded.folder)),
                                            "Measuring the SAE")  # fmt: skip
                st.success(md_escape(quality.describe()))
        return
    cols = st.columns(5)
    cols[0].metric("FVU (variance unexplained)", f"{metrics['fvu']:.3f}")
    cols[1].metric("L0 (active per token)", f"{metrics['l0']:.1f}")
    cols[2].metric("Dead features", f"{100 * metrics['dead_fraction']:.1f} %")
    cols[3].metric("CE loss recovered", f"{100 * metrics['ce_loss_recovered']:.1f} %")
    cols[4].metric("Loss added by the SAE", f"{metrics['spliced_loss'] - metrics['clean_loss']:+.3f} nats/token")
    data = loaded.card.get("data", {})
    trained = f"Trained on {loaded.card.get('training_tokens', 0):,} tokens of {data.get('corpus', '?')}"
    licence = data.get("licence", "licence unknown")
    st.caption(md_escape(f"{trained} ({licence}); measured on {metrics['evaluation_tokens']:,} held-out tokens."))


def prompt_section(model, loaded: SAEFolder) -> None:
    st.subheader("Features on your prompt")
    seed_input(KEY_PROMPT, PromptFeaturesRun.default("prompt"))
    prompt = st.text_area("Prompt", key=KEY_PROMPT, height=80, persist_state="session")
    with shown_as_message("Finding the features"):
        spec = PromptFeaturesRun(sae_folder=str(loaded.folder), prompt=prompt)
        found = cached_run(model, spec)
        rows = [
            {
                "position": position,
                "token": token,
                "feature": latent,
                "activation": round(value, 2),
                "your label": feature_label(loaded, latent),
            }
            for position, (token, top) in enumerate(zip(found.tokens, found.top, strict=True))
            for latent, value in top[:3]
        ]
        st.caption("The three strongest features on each token (the first token, the attention sink, is not encoded). "
                   "Pick a row's feature below to open it.")  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, height=260)
        overall = found.codes.sum(dim=0)
        strongest = [int(i) for i in overall.topk(min(8, overall.numel())).indices if overall[i] > 0]
        st.caption("Strongest over the whole prompt (search by context): "
                   + ", ".join(f"{latent} ({overall[latent]:.1f})" for latent in strongest))  # fmt: skip


def dashboard_section(model, loaded: SAEFolder) -> None:
    st.subheader("A feature")
    pick, search = st.columns([1, 2])
    latent = int(pick.number_input("Feature", 0, loaded.sae.d_sae - 1, key=KEY_LATENT, persist_state="session"))
    with search:
        token = st.text_input("…or find features that promote a token", key=KEY_SEARCH, placeholder=" Paris")
        if token:
            with shown_as_message("Searching"):
                from features.dashboard import features_promoting
                from interp.tokens import single_token_id

                found = features_promoting(model, loaded.sae, single_token_id(model, token), n=8)
                st.caption("Strongest first: " + ", ".join(f"{latent_} ({value:+.2f})" for latent_, value in found))
    with shown_as_message("Opening the feature"):
        board = run_with_progress(model, FeatureDashboardRun(sae_folder=str(loaded.folder), latent=latent), "Opening the feature")
        label = st.text_input("Label (yours to rename; kept on this machine)", value=feature_label(loaded, latent, board.label),
                              key=f"{KEY_LABEL}_{latent}")  # fmt: skip
        if label != feature_label(loaded, latent, board.label):
            rename_feature(loaded, latent, label)
        st.markdown(
            f"**Fires on {100 * board.density:.3f} % of tokens** of the indexed text. Top contexts, the strongest token outlined:"
        )
        for example in board.examples:
            peak = max(example.activations) or 1.0
            weights = [max(0.0, a) / peak for a in example.activations]
            titles = [f"{a:.2f}" for a in example.activations]
            token_chips(example.tokens, weights, titles)
        left, right = st.columns(2)
        with left:
            edges = board.bin_edges
            centres = [(edges[i] * edges[i + 1]) ** 0.5 for i in range(len(board.histogram))]  # log-spaced bins
            figure = go.Figure(go.Bar(x=centres, y=board.histogram, width=[edges[i + 1] - edges[i] for i in range(len(centres))]))
            figure.update_layout(title="Activation when it fires", xaxis_title="activation (residual-stream units, log scale)",
                                 xaxis_type="log", yaxis_title="tokens", height=300, margin=dict(t=40, b=40))  # fmt: skip
            st.plotly_chart(figure, key="feat_histogram")
        with right:
            effects = pd.DataFrame({
                "promotes": [e.token for e in board.promoted], "logit +": [round(e.logit, 3) for e in board.promoted],
                "suppresses": [e.token for e in board.suppressed], "logit −": [round(e.logit, 3) for e in board.suppressed],
            })  # fmt: skip
            st.caption("Direct effect on next-token logits per unit of activation (through the final norm and the unembedding)")
            st.dataframe(effects, hide_index=True)


def attribution_section(model, loaded: SAEFolder) -> None:
    st.subheader("Which features drive a prediction")
    cols = st.columns([3, 1])
    seed_input(KEY_ATTR_PROMPT, FeatureAttributionRun.default("prompt"))
    seed_input(KEY_ATTR_TARGET, FeatureAttributionRun.default("target"))
    prompt = cols[0].text_input("Prompt", key=KEY_ATTR_PROMPT, persist_state="session")
    target = cols[1].text_input("Next token", key=KEY_ATTR_TARGET, persist_state="session")
    with shown_as_message("Attributing"):
        spec = FeatureAttributionRun(sae_folder=str(loaded.folder), prompt=prompt, target=target)
        result = run_with_progress(model, spec, "Attribution patching on the features (1 forward + 1 backward, then ablations)")
        st.caption(md_escape(f"log P({result.target}) = {result.log_prob:.3f} nats. Attribution: the first-order estimate of "
                             "the drop if the feature were zeroed; ablated: the real drop (nats)."))  # fmt: skip
        rows = [
            {
                "feature": e.latent,
                "your label": feature_label(loaded, e.latent),
                "attribution (nats)": round(e.attribution, 4),
                "ablated drop (nats)": None if e.ablated_drop is None else round(e.ablated_drop, 4),
                "activation": round(e.activation, 2),
            }
            for e in result.effects
        ]
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True)
        keep_run(model, spec, result, key="feat_attr_keep")


def steering_section(model, loaded: SAEFolder) -> None:
    st.subheader("Steer with the feature")
    latent = int(st.session_state.get(KEY_LATENT, 0))
    cols = st.columns(4)
    mode = cols[0].radio("How", ["add", "clamp"], key=KEY_STEER_MODE, horizontal=True,
                         format_func={"add": "Add its direction", "clamp": "Clamp its activation"}.get)  # fmt: skip
    seed_input(KEY_STEER_VALUE, FeatureSteeringRun.default("value"))
    value = cols[1].number_input("Amount (residual units added / activation)", -200.0, 200.0, step=1.0, key=KEY_STEER_VALUE,
                                 persist_state="session")  # fmt: skip
    scorer = cols[2].selectbox("Behaviour score", SCORER_NAMES, key=KEY_STEER_SCORER)
    if cols[3].button(f"Steer with feature {latent}", type="primary", key=KEY_STEER_RUN):
        with shown_as_message("Steering"):
            st.session_state[KEY_STEER_SPEC] = FeatureSteeringRun(
                sae_folder=str(loaded.folder), latent=latent, mode=mode, value=float(value), scorer=scorer
            )
    spec = st.session_state.get(KEY_STEER_SPEC)
    if spec is None:
        st.caption(
            "Samples the neutral prompts with and without the feature (same seeds) and scores them as the Steering page does."
        )
        return
    with shown_as_message("Steering"):
        result = run_with_progress(model, spec, "Sampling steered and unsteered text")
        cols = st.columns(4)
        cols[0].metric(f"{result.scorer} gain", f"{result.behaviour_gain:+.3f}")
        cols[1].metric("Perplexity (× unsteered)", f"×{result.perplexity_ratio:.2f}")
        cols[2].metric("KL (nats/token)", f"{result.kl:.3f}")
        cols[3].metric("Feature", f"{spec.latent} ({spec.mode} {spec.value:g})")
        st.dataframe(pd.DataFrame({"unsteered": result.unsteered.texts, "steered": result.steered.texts}), hide_index=True)
        keep_run(model, spec, result, key="feat_steer_keep")


def comparison_section(model, loaded: SAEFolder) -> None:
    """AxBench's question on this model: does the feature steer as well as the mean difference of contrast pairs?"""
    st.subheader("Feature vs mean-difference vector")
    latent = int(st.session_state.get(KEY_LATENT, 0))
    cols = st.columns([2, 1])
    # only pair sets with a scorer of their own: a formality vector scored for sentiment would answer another question
    scored = [name for name in BUILT_IN if name in SCORER_NAMES]
    pairs = cols[0].selectbox("Contrast pairs for the vector", scored, format_func=BUILT_IN.get, key=KEY_COMPARE_PAIRS)
    if cols[1].button(f"Compare feature {latent}", key=KEY_COMPARE_RUN):
        with shown_as_message("Comparing"):
            st.session_state[KEY_COMPARE_SPEC] = FeatureVsVectorRun(sae_folder=str(loaded.folder), latent=latent,
                                                                    pairs=pairs, scorer=pairs)  # fmt: skip
    spec, result = stoppable_result(model, KEY_COMPARE_SPEC, KEY_COMPARE_RUN, "The comparison")
    if result is None:
        st.caption("Both directions at unit norm, added at the SAE's layer with the same norms, on the same prompts and "
                   "seeds: effect against damage in one sweep (a few minutes on SmolLM2).")  # fmt: skip
        return
    st.markdown(f"**Cosine** between feature {spec.latent}'s direction and the vector: **{result.cosine:+.3f}**")
    figure = go.Figure()
    rows = []
    for name, swept in ((f"feature {spec.latent}", result.feature), (f"mean difference ({spec.pairs})", result.vector)):
        base = swept.baseline.mean_behaviour
        gains = [cell.behaviour - base for cell in swept.cells]
        ratios = [cell.perplexity_ratio for cell in swept.cells]
        figure.add_trace(go.Scatter(x=ratios, y=gains, mode="lines+markers+text", name=name,
                                    text=[f"{c.coefficient:g}" for c in swept.cells], textposition="top center"))  # fmt: skip
        rows += [{"direction": name, "added norm": c.coefficient, "gain": round(g, 3), "perplexity (× unsteered)": round(r, 2),
                  "KL (nats/token)": round(c.kl, 3)} for c, g, r in zip(swept.cells, gains, ratios, strict=True)]  # fmt: skip
    figure.update_layout(xaxis_title="perplexity (× unsteered): damage", yaxis_title="behaviour gain: effect", height=360,
                         title="Effect against damage (labels: added norm)")  # fmt: skip
    st.plotly_chart(figure, key="feat_compare_plot")
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    keep_run(model, spec, result, key="feat_compare_keep")


model = require_model()
training_section(model)
loaded = choose_sae(model)
if loaded is not None:
    prompt_section(model, loaded)
    dashboard_section(model, loaded)
    attribution_section(model, loaded)
    steering_section(model, loaded)
    comparison_section(model, loaded)
