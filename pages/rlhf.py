"""Reward & RLHF: a learned reward, best-of-N, DPO fine-tuning — and how they compare with steering."""

from __future__ import annotations

import tempfile

import streamlit as st

from interp import LoadedModel
from interp.generation import generate_batch
from steering.rlhf import (
    BestOfNRun,
    ComparisonRun,
    DPORun,
    PreferencePair,
    RewardModel,
    RewardTrainingRun,
    builtin_preferences,
    default_steering_layers,
    load_tuned,
    partial_dpo,
    read_preferences,
    reward_attribution,
    split_by_prompt,
)
from steering.rlhf.dpo import remember
from steering.rlhf.plots import (
    REWARD_SCALE,
    REWARD_UNIT,
    best_of_n_figure,
    best_of_n_table,
    comparison_figure,
    comparison_table,
    dpo_log_figure,
    inside_view_figure,
)
from ui.errors import shown_as_message
from ui.model import require_model
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, token_chips, warn_unknown_text
from ui.state import set_trained_reward_model

KEY_DATA = "rlhf_data"
KEY_UPLOAD = "rlhf_upload"
KEY_TRAIN = "rlhf_train"
KEY_LOAD = "rlhf_load"
KEY_PROMPT = "rlhf_prompt"
KEY_RESPONSE = "rlhf_response"
KEY_N = "rlhf_n"
KEY_BON = "rlhf_bon"
KEY_STEPS = "rlhf_steps"
KEY_DPO = "rlhf_dpo"
KEY_DPO_STOP = "rlhf_dpo_stop"
KEY_COMPARE = "rlhf_compare"
# What this page keeps between reruns: specs (their results come from the cache) and what cannot be recomputed.
KEY_REWARD_SPEC = "rlhf_reward_spec"  # (weights, RewardTrainingRun)
KEY_LOADED_REWARD = "rlhf_loaded_reward"  # the RewardModel uploaded (until the next training)
KEY_LOADED_FROM = "rlhf_loaded_from"  # the upload's file id, so one upload is read once
KEY_BON_SPEC = "rlhf_bon_spec"  # (weights, BestOfNRun)
KEY_DPO_RUN = "rlhf_dpo_run"  # (weights, DPORun, its folder): a stopped run's adapter is found there
KEY_DPO_RESULT = "rlhf_dpo_result"
KEY_COMPARE_SPEC = "rlhf_compare_spec"  # (weights, ComparisonRun)
EVAL_PROMPTS = (
    "Can you help me carry this box?",
    "How do I boil an egg?",
    "I think you made a mistake.",
    "Where is the train station?",
)
NS = (1, 2, 4, 8, 16)


def stored(key: str, model: LoadedModel):
    """The spec kept under ``key`` if it was made for ``model``'s weights (another model's is not shown)."""
    entry = st.session_state.get(key)
    return entry[1] if entry is not None and entry[0] == model.info.weights_sha256 else None


def run_cached(model: LoadedModel, spec, text: str):
    """``cached_run`` with a progress bar while it computes; None if it failed (the message is on the page)."""
    result = None
    with shown_as_message(text):
        result = run_with_progress(model, spec, f"{text}…")
    return result


def preference_data() -> tuple[str, list[PreferencePair] | None]:
    source = st.radio(
        "Preference data",
        ["built-in", "upload"],
        horizontal=True,
        key=KEY_DATA,
        format_func={"built-in": "Built-in: 160 pairs, helpful and polite", "upload": "My own pairs (CSV or JSONL)"}.get,
    )
    with shown_as_message("Reading the preference pairs"):
        if source == "built-in":
            return source, builtin_preferences()
        label = "Pairs with columns prompt, chosen, rejected (optional trait)"
        upload = st.file_uploader(label, type=["csv", "jsonl"], key=KEY_UPLOAD)
        if upload is not None:
            return source, read_preferences(upload.name, upload.getvalue())
    return source, None


def reward_section(model: LoadedModel) -> RewardModel | None:
    """Train (or load) the reward model; returns the one in use and offers it to the Steering page."""
    st.markdown(
        "A **reward model** turns human preferences into a number: trained on pairs *(prompt, chosen, rejected)* with the "
        "Bradley–Terry loss, it learns `P(chosen ≻ rejected) = σ(r(chosen) − r(rejected))`. Here it is a linear head on "
        f"{md_escape(model.info.name)}'s own residual stream, so it trains in about a minute on a CPU."
    )
    source, pairs = preference_data()
    if pairs is not None:
        spec = RewardTrainingRun(tuple(pairs), data_name=source)
        train, test = spec.split()
        st.caption(
            f"{len(pairs)} pairs: {len(train)} for training, {len(test)} held out "
            "(split by prompt, so no prompt is on both sides)."
        )
        if st.button("Train the reward model", type="primary", key=KEY_TRAIN):
            st.session_state[KEY_REWARD_SPEC] = (model.info.weights_sha256, spec)
            st.session_state.pop(KEY_LOADED_REWARD, None)
    trained_view = st.container()  # above the upload box, filled once we know no upload replaces it
    reward = loaded_reward(model)
    if reward is None:
        with trained_view:
            reward = trained_reward(model)
    set_trained_reward_model(reward)
    return reward


def trained_reward(model: LoadedModel) -> RewardModel | None:
    """The reward model the Train button asked for (from the cache on later reruns), with its accuracies."""
    spec = stored(KEY_REWARD_SPEC, model)
    report = run_cached(model, spec, "Training the reward model") if spec is not None else None
    if report is not None:
        reward = report.reward_model
        a, b, c = st.columns(3)
        a.metric("Held-out pairwise accuracy", f"{100 * report.test_accuracy:.1f}%")
        b.metric("Training accuracy", f"{100 * report.train_accuracy:.1f}%")
        c.metric("Layer chosen on validation", f"{reward.layer}")
        st.download_button(
            "Download the reward model (.zip: head as safetensors + JSON card)",
            data=reward.to_zip_bytes(),
            file_name="reward_model.zip",
            on_click="ignore",
        )
        keep_run(model, spec, report, key="rlhf_keep", label="reward model")
        return reward
    return None


def loaded_reward(model: LoadedModel) -> RewardModel | None:
    """A reward model uploaded as the zip this page downloads (it replaces a trained one until the next training)."""
    saved = st.file_uploader("Or load a reward model you downloaded before (.zip)", type=["zip"], key=KEY_LOAD)
    if saved is not None and st.session_state.get(KEY_LOADED_FROM) != saved.file_id:
        st.session_state[KEY_LOADED_FROM] = saved.file_id
        with shown_as_message("Loading the reward model"):
            st.session_state[KEY_LOADED_REWARD] = RewardModel.from_zip_bytes(saved.getvalue(), model)
            st.session_state.pop(KEY_REWARD_SPEC, None)
    reward = st.session_state.get(KEY_LOADED_REWARD)
    if reward is None or reward.base_weights_sha256 != model.info.weights_sha256:
        return None
    card, accuracy = reward.card, reward.card.get("test_accuracy")
    st.caption(
        f"Loaded reward model: layer {reward.layer}, trained on {md_escape(str(card.get('data', '?')))} data "
        f"({card.get('pairs_train', '?')} pairs)" + (f", held-out pairwise accuracy {100 * accuracy:.1f}%." if accuracy else ".")
    )
    return reward


def score_section(model: LoadedModel, reward: RewardModel) -> None:
    st.subheader("Score any reply")
    prompt = st.text_input("Prompt", "Can you help me with my homework?", key=KEY_PROMPT)
    response = st.text_area(
        "Reply", "Of course, I would be glad to help. Which question are you working on?", key=KEY_RESPONSE, height=70
    )
    warn_unknown_text(model, prompt, "Prompt")
    warn_unknown_text(model, response, "Reply")
    with shown_as_message("Scoring"):
        value = float(reward.score(model, [prompt], [response])[0])
        st.metric("Reward", f"{value:+.3f} logits", help=REWARD_SCALE)
        st.caption(f"Reward in {REWARD_UNIT}. {REWARD_SCALE}")
        attribution = reward_attribution(model, reward, prompt, response, "feature_ablation")
        peak = float(abs(attribution.scores).max()) or 1.0
        token_chips(
            list(attribution.tokens),
            weights=[float(s) / peak for s in attribution.scores],
            titles=[f"{s:+.3f}" for s in attribution.scores],
        )
        st.caption(
            "Which words earned the reward: the drop in reward when each token is replaced (feature ablation). "
            "Purple raised it, orange lowered it."
        )


def best_of_n_section(model: LoadedModel, reward: RewardModel | None) -> None:
    st.markdown(
        "**Best-of-N** samples N replies and keeps the one the reward model likes most. It needs no training — only N "
        "times the compute — and can move the model's output distribution by at most `log N − (N−1)/N` nats of KL divergence."
    )
    if reward is None:
        st.info("Train the reward model first (first tab).")
        return
    top = st.select_slider("Largest N", options=[2, 4, 8, 16], value=8, key=KEY_N)
    if st.button("Sample and score", key=KEY_BON):
        spec = BestOfNRun(reward, EVAL_PROMPTS, ns=tuple(n for n in NS if n <= top))
        st.session_state[KEY_BON_SPEC] = (model.info.weights_sha256, spec)
    spec = stored(KEY_BON_SPEC, model)
    if spec is None:
        return
    result = run_cached(model, spec, "Best-of-N")
    if result is None:
        return
    st.plotly_chart(best_of_n_figure(result), key="rlhf_bon_chart")
    st.dataframe(best_of_n_table(result), hide_index=True)
    keep_run(model, spec, result, key="rlhf_bon_keep", label="best-of-N")


def training_pairs() -> list[PreferencePair]:
    """The preferences DPO and the comparison use: the reward model's, or the built-in ones."""
    entry = st.session_state.get(KEY_REWARD_SPEC)
    return list(entry[1].pairs) if entry is not None else builtin_preferences()


def dpo_section(model: LoadedModel) -> DPORun | None:
    """Train a LoRA adapter with DPO (live loss chart, stoppable); returns the spec of the adapter on screen."""
    st.markdown(
        "**DPO** fine-tunes the model on the preference pairs directly: it raises the log-probability of chosen over "
        "rejected replies relative to a frozen copy of the model — the RLHF objective solved in closed form. A small LoRA "
        "adapter is trained on a *separate copy*; the model every page uses is never changed."
    )
    steps = st.slider("Training steps", 5, 100, DPORun.default("max_steps"), key=KEY_STEPS)
    start_col, stop_col = st.columns([1, 5])
    start = start_col.button("Start DPO", type="primary", key=KEY_DPO)
    stop_col.button("Stop", key=KEY_DPO_STOP, help="Stops after the current step; the adapter so far is kept.")
    chart = st.empty()  # the one place for the training chart: live while it trains, then the finished log
    if start:
        spec = DPORun(tuple(split_by_prompt(training_pairs())[0]), max_steps=steps)
        folder = tempfile.mkdtemp(prefix="steerscope-dpo-")  # so a stopped run's adapter can be found
        st.session_state[KEY_DPO_RUN] = (model.info.weights_sha256, spec, folder)
        st.session_state.pop(KEY_DPO_RESULT, None)
        entries = []

        def show(entry) -> None:
            entries.append(entry)
            chart.plotly_chart(dpo_log_figure(entries), key=f"rlhf_dpo_live_{len(entries)}")

        with shown_as_message("DPO"), st.spinner("Training (a few seconds per step on a CPU)"):
            st.session_state[KEY_DPO_RESULT] = spec.train(model, folder, on_log=show)
    entry = st.session_state.get(KEY_DPO_RUN)
    if entry is None or entry[0] != model.info.weights_sha256:
        return None
    _, spec, folder = entry
    result = st.session_state.get(KEY_DPO_RESULT)
    if result is None:
        result = partial_dpo(folder)  # Stop interrupted the run: keep what it saved
        if result is None:
            return None
        st.session_state[KEY_DPO_RESULT] = result
        remember(model, spec.ended_at(result), result)
    if result.log:
        chart.plotly_chart(dpo_log_figure(result.log), key="rlhf_dpo_log")
    else:
        chart.empty()
    dpo_result_view(model, result)
    spec = spec.ended_at(result)  # a stopped run is kept (and replays) as far as it went
    keep_run(model, spec, result, key="rlhf_dpo_keep", label="DPO")
    return spec


def dpo_result_view(model: LoadedModel, result) -> None:
    done = f"{result.steps_done} steps" + (" (stopped early)" if result.stopped else f" in {result.seconds:.0f} s")
    st.caption(f"{done}; LoRA adapter saved at {md_escape(str(result.adapter))}.")
    with shown_as_message("Generating before and after"), st.spinner("Greedy replies from the base and the tuned model"):
        tuned = load_tuned(result)
        before = generate_batch(model, list(EVAL_PROMPTS), max_new_tokens=30, temperature=0.0, chat=True)
        after = generate_batch(tuned, list(EVAL_PROMPTS), max_new_tokens=30, temperature=0.0, chat=True)
        rows = {"prompt": EVAL_PROMPTS, "before DPO": [g[0].text for g in before], "after DPO": [g[0].text for g in after]}
        st.dataframe(rows, hide_index=True)


def compare_section(model: LoadedModel, reward: RewardModel | None, dpo: DPORun | None) -> None:
    st.markdown(
        "The same prompts and the same reward model judge four ways to get a more polite, helpful reply: nothing, best-of-N, "
        "a steering vector (chosen minus rejected replies), and the DPO adapter. "
        "Cost is the perplexity under the unchanged model."
    )
    if reward is None:
        st.info("Train the reward model first (first tab).")
        return
    if st.button("Compare", type="primary", key=KEY_COMPARE):
        layers = default_steering_layers(model.info.n_layers)
        spec = ComparisonRun(reward, tuple(training_pairs()), EVAL_PROMPTS, steering_layers=layers, dpo=dpo)
        st.session_state[KEY_COMPARE_SPEC] = (model.info.weights_sha256, spec)
    spec = stored(KEY_COMPARE_SPEC, model)
    if spec is None:
        return
    result = run_cached(model, spec, "The comparison")
    if result is None:
        return
    choice = result.choice
    st.caption(
        f"Steering setting: the best reward gain among {len(choice.cells)} layer × coefficient cells "
        + ("with perplexity within 2x of unsteered." if choice.within_limit else "— none stayed within 2x perplexity; "
           "this is the least damaging one.")
    )  # fmt: skip
    st.dataframe(comparison_table(result), hide_index=True)
    st.plotly_chart(comparison_figure(result), key="rlhf_compare_chart")
    if result.inside is not None:
        st.plotly_chart(inside_view_figure(result.inside), key="rlhf_inside_chart")
    else:
        st.caption("Train a DPO adapter (third tab) to add it to the comparison and see the inside view.")
    keep_run(model, spec, result, key="rlhf_compare_keep", label="comparison")


st.title("Reward & RLHF")
st.caption(
    "RLHF steers a model with a learned teacher signal — a reward — where activation steering adds a vector. "
    "Train a reward model, see which words earn reward, sample best-of-N, fine-tune with DPO, and compare them with steering."
)
loaded = require_model()
reward_tab, bon_tab, dpo_tab, compare_tab = st.tabs(["Reward model", "Best-of-N", "DPO", "Compare"])
with reward_tab:
    reward_in_use = reward_section(loaded)
    if reward_in_use is not None:
        score_section(loaded, reward_in_use)
with bon_tab:
    best_of_n_section(loaded, reward_in_use)
with dpo_tab:
    dpo_on_screen = dpo_section(loaded)
with compare_tab:
    compare_section(loaded, reward_in_use, dpo_on_screen)
