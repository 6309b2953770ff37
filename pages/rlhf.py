"""Reward & RLHF: a learned reward, best-of-N, DPO fine-tuning — and how they compare with steering."""

from __future__ import annotations

import tempfile

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from interp.generation import generate_batch
from interp.plots import base_layout
from interp.records import Bundle
from steering.apply import steering_hooks
from steering.datasets import ContrastPairs
from steering.make import mean_difference
from steering.reward import (
    RewardModel,
    builtin_preferences,
    preference_inputs,
    read_preferences,
    reward_attribution,
    split_by_prompt,
    train_reward_model,
)
from steering.rlhf import best_of_n, compare, inside_view, load_tuned, partial_dpo, recommend_steering, train_dpo
from ui.errors import shown_as_message
from ui.model import require_model
from ui.records import keep_run
from ui.render import md_escape, token_chips

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
EVAL_PROMPTS = (
    "Can you help me carry this box?",
    "How do I boil an egg?",
    "I think you made a mistake.",
    "Where is the train station?",
)

st.title("Reward & RLHF")
st.caption(
    "RLHF steers a model with a learned teacher signal — a reward — where activation steering adds a vector. "
    "Train a reward model, see which words earn reward, sample best-of-N, fine-tune with DPO, and compare them with steering."
)
model = require_model()
info = model.info
state = st.session_state.setdefault("rlhf_state", {})

reward_tab, bon_tab, dpo_tab, compare_tab = st.tabs(["Reward model", "Best-of-N", "DPO", "Compare"])

with reward_tab:
    st.markdown(
        "A **reward model** turns human preferences into a number: trained on pairs *(prompt, chosen, rejected)* with the "
        "Bradley–Terry loss, it learns `P(chosen ≻ rejected) = σ(r(chosen) − r(rejected))`. Here it is a linear head on "
        f"{md_escape(info.name)}'s own residual stream, so it trains in about a minute on a CPU."
    )
    source = st.radio(
        "Preference data",
        ["built-in", "upload"],
        horizontal=True,
        key=KEY_DATA,
        format_func={"built-in": "Built-in: 160 pairs, helpful and polite", "upload": "My own pairs (CSV or JSONL)"}.get,
    )
    pairs = None
    with shown_as_message("Reading the preference pairs"):
        if source == "upload":
            upload = st.file_uploader(
                "Pairs with columns prompt, chosen, rejected (optional trait)", type=["csv", "jsonl"], key=KEY_UPLOAD
            )
            if upload is not None:
                pairs = read_preferences(upload.name, upload.getvalue())
        else:
            pairs = builtin_preferences()
    if pairs is not None:
        train, test = split_by_prompt(pairs)
        st.caption(
            f"{len(pairs)} pairs: {len(train)} for training, {len(test)} held out "
            "(split by prompt, so no prompt is on both sides)."
        )
        if st.button("Train the reward model", type="primary", key=KEY_TRAIN):
            bar = st.progress(0.0, text="Starting")
            with shown_as_message("Training the reward model"):
                result = train_reward_model(
                    model, train, test, data_name=source, progress=lambda f, m: bar.progress(min(f, 1.0), text=m)
                )
                state["reward"] = result.reward_model
                state["reward_report"] = result
                state["pairs"] = (source, list(pairs))  # DPO and the comparison use the same preferences
            bar.empty()
    report = state.get("reward_report")
    reward: RewardModel | None = state.get("reward")
    if reward is not None and reward.base_weights_sha256 != info.weights_sha256:
        reward = None  # trained on another model; retrain
    if report is not None and reward is not None:
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
        keep_run(model, "reward_model", preference_inputs(*state["pairs"]), {}, report, key="rlhf_keep", seed=0)
    saved = st.file_uploader("Or load a reward model you downloaded before (.zip)", type=["zip"], key=KEY_LOAD)
    if saved is not None and state.get("loaded_from") != saved.file_id:
        with shown_as_message("Loading the reward model"):
            state["reward"], state["reward_report"] = RewardModel.from_zip_bytes(saved.getvalue(), model), None
            state["loaded_from"] = saved.file_id
            reward = state["reward"]
    if reward is not None and report is None:
        card, accuracy = reward.card, reward.card.get("test_accuracy")
        st.caption(
            f"Loaded reward model: layer {reward.layer}, trained on {md_escape(str(card.get('data', '?')))} data "
            f"({card.get('pairs_train', '?')} pairs)"
            + (f", held-out pairwise accuracy {100 * accuracy:.1f}%." if accuracy else ".")
        )
    if reward is not None:
        st.subheader("Score any reply")
        prompt = st.text_input("Prompt", "Can you help me with my homework?", key=KEY_PROMPT)
        response = st.text_area(
            "Reply", "Of course, I would be glad to help. Which question are you working on?", key=KEY_RESPONSE, height=70
        )
        with shown_as_message("Scoring"):
            value = float(reward.score(model, [prompt], [response])[0])
            st.metric("Reward", f"{value:+.3f}")
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

with bon_tab:
    st.markdown(
        "**Best-of-N** samples N replies and keeps the one the reward model likes most. It needs no training — only N "
        "times the compute — and can move the model's output distribution by at most `log N − (N−1)/N` nats of KL divergence."
    )
    if reward is None:
        st.info("Train the reward model first (first tab).")
    else:
        top = st.select_slider("Largest N", options=[2, 4, 8, 16], value=8, key=KEY_N)
        if st.button("Sample and score", key=KEY_BON):
            with shown_as_message("Best-of-N"), st.spinner(f"Sampling {top} replies per prompt, twice, and scoring them"):
                ns = [n for n in (1, 2, 4, 8, 16) if n <= top]
                state["bon"] = best_of_n(model, reward, list(EVAL_PROMPTS), ns=ns, groups=2, max_new_tokens=30)
        result = state.get("bon")
        if result is not None:
            fig = go.Figure()
            fig.add_trace(
                go.Scatter(x=list(result.ns), y=result.mean_reward, mode="lines+markers", name="mean reward of the kept reply")
            )
            fig.add_trace(
                go.Scatter(
                    x=list(result.ns), y=result.kl_bounds, mode="lines", name="KL bound (nats)", yaxis="y2", line={"dash": "dot"}
                )
            )
            fig.update_layout(
                xaxis={"title": "N", "type": "log"},
                yaxis={"title": "reward"},
                yaxis2={"title": "KL bound (nats)", "overlaying": "y", "side": "right"},
                legend={"orientation": "h", "y": -0.25},
            )
            st.plotly_chart(base_layout(fig, height=360))
            rows = [
                {"prompt": p, "reply": t, "reward": round(r, 3)}
                for p, texts, rewards in zip(result.prompts, result.samples, result.rewards, strict=True)
                for t, r in zip(texts, rewards, strict=True)
            ]
            st.dataframe(pd.DataFrame(rows).sort_values(["prompt", "reward"], ascending=[True, False]), hide_index=True)

with dpo_tab:
    st.markdown(
        "**DPO** fine-tunes the model on the preference pairs directly: it raises the log-probability of chosen over "
        "rejected replies relative to a frozen copy of the model — the RLHF objective solved in closed form. A small LoRA "
        "adapter is trained on a *separate copy*; the model every page uses is never changed."
    )
    steps = st.slider("Training steps", 5, 100, 30, key=KEY_STEPS)
    start_col, stop_col = st.columns([1, 5])
    start = start_col.button("Start DPO", type="primary", key=KEY_DPO)
    stop_col.button("Stop", key=KEY_DPO_STOP, help="Stops after the current step; the adapter so far is kept.")
    if start:
        chart = st.empty()
        entries = []

        def show(entry) -> None:
            entries.append(entry)
            frame = pd.DataFrame(
                [{"step": e.step, "DPO loss": e.loss, "reward margin": e.reward_margin} for e in entries]
            ).set_index("step")
            chart.line_chart(frame)

        state.pop("dpo", None)
        state["dpo_dir"] = tempfile.mkdtemp(prefix="steerscope-dpo-")  # so a stopped run's adapter can be found
        state["dpo_max_steps"] = steps  # the run's own setting, whatever the slider says later
        with shown_as_message("DPO"), st.spinner("Training (a few seconds per step on a CPU)"):
            state["dpo_pairs"] = state.get("pairs", ("built-in", builtin_preferences()))
            train_pairs, _ = split_by_prompt(state["dpo_pairs"][1])
            state["dpo"] = train_dpo(model, train_pairs, state["dpo_dir"], max_steps=steps, on_log=show)
    if "dpo" not in state and "dpo_dir" in state:
        partial = partial_dpo(state["dpo_dir"])  # Stop interrupted the run: keep what it saved
        if partial is not None:
            state["dpo"] = partial
    result = state.get("dpo")
    if result is not None:
        done = f"{result.steps_done} steps" + (" (stopped early)" if result.stopped else f" in {result.seconds:.0f} s")
        st.caption(f"{done}; LoRA adapter saved at {md_escape(str(result.adapter))}.")
        if result.log:
            frame = pd.DataFrame(
                [{"step": e.step, "DPO loss": e.loss, "reward margin": e.reward_margin} for e in result.log]
            ).set_index("step")
            st.line_chart(frame)
        with shown_as_message("Generating before and after"), st.spinner("Greedy replies from the base and the tuned model"):
            tuned = load_tuned(result)
            before = generate_batch(model, list(EVAL_PROMPTS), max_new_tokens=30, temperature=0.0, chat=True)
            after = generate_batch(tuned, list(EVAL_PROMPTS), max_new_tokens=30, temperature=0.0, chat=True)
            st.dataframe(
                pd.DataFrame(
                    {"prompt": EVAL_PROMPTS, "before DPO": [g[0].text for g in before], "after DPO": [g[0].text for g in after]}
                ),
                hide_index=True,
            )
        dpo_settings = {
            "max_steps": state.get("dpo_max_steps", steps),
            "batch_size": 4,
            "learning_rate": 5e-4,
            "beta": 0.1,
            "lora_rank": 8,
        }
        if result.stopped:  # the schedule ran over max_steps; the replay stops where the user did
            dpo_settings["stop_after_steps"] = result.steps_done
        keep_run(
            model,
            "dpo",
            preference_inputs(*state.get("dpo_pairs", ("built-in", builtin_preferences()))),
            dpo_settings,
            Bundle({"log": list(result.log), "steps_done": result.steps_done}),
            key="rlhf_dpo_keep",
            seed=0,
        )

with compare_tab:
    st.markdown(
        "The same prompts and the same reward model judge four ways to get a more polite, helpful reply: nothing, best-of-N, "
        "a steering vector (chosen minus rejected replies), and the DPO adapter. "
        "Cost is the perplexity under the unchanged model."
    )
    if reward is None:
        st.info("Train the reward model first (first tab).")
    elif st.button("Compare", type="primary", key=KEY_COMPARE):
        with shown_as_message("The comparison"):
            _, pairs_all = state.get("pairs", ("built-in", builtin_preferences()))
            contrast = ContrastPairs(
                "chosen vs rejected", tuple(p.chosen for p in pairs_all), tuple(p.rejected for p in pairs_all)
            )
            vector = mean_difference(model, contrast, layers=list(range(info.n_layers)), position="mean")
            # The vector's recommended setting, found the way the comparison judges: same replies, reward, cost.
            sweep_layers = sorted({max(0, round(info.n_layers * f)) for f in (0.15, 0.3)} & set(vector.layers))
            bar = st.progress(0.0, text="Finding the steering vector's recommended setting")
            choice = recommend_steering(
                model, reward, vector, list(EVAL_PROMPTS), layers=sweep_layers, coefficients=[1.0, 2.0, 3.0],
                progress=lambda done, total: bar.progress(0.6 * done / total, text=f"Steering sweep: cell {done} of {total}"),
            )  # fmt: skip
            bar.progress(0.6, text="Sampling and scoring unsteered, best-of-4, steering and DPO replies")
            tuned = load_tuned(state["dpo"]) if "dpo" in state else None
            rows = compare(
                model,
                reward,
                list(EVAL_PROMPTS),
                best_of=4,
                steering_hooks=steering_hooks(model, vector, choice.coefficient, layers=[choice.layer]),
                steering_label=f"steering vector (layer {choice.layer}, ×{choice.coefficient:g})",
                tuned=tuned,
            )
            bar.empty()
            st.caption(
                f"Steering setting: the best reward gain among {len(choice.cells)} layer × coefficient cells "
                + ("with perplexity within 2x of unsteered." if choice.within_limit else "— none stayed within 2x perplexity; "
                   "this is the least damaging one.")
            )  # fmt: skip
            table = pd.DataFrame(
                [
                    dict(
                        method=r.method,
                        reward=round(r.mean_reward, 3),
                        gain=round(r.reward_gain, 3),
                        perplexity=round(r.perplexity_under_base, 1),
                        cost=r.cost,
                    )
                    for r in rows
                ]
            )
            st.dataframe(table, hide_index=True)
            fig = go.Figure(
                go.Scatter(
                    x=table["perplexity"],
                    y=table["gain"],
                    mode="markers+text",
                    text=table["method"],
                    textposition="top center",
                    marker={"size": 12, "color": "#5b4bdb"},
                )
            )
            fig.update_xaxes(title="perplexity under the unchanged model")
            fig.update_yaxes(title="reward gain over unsteered")
            st.plotly_chart(base_layout(fig, height=360))
            if tuned is not None:
                _, held_out = split_by_prompt(pairs_all)  # evaluation pairs: DPO never trained on these prompts
                view = inside_view(
                    model,
                    tuned,
                    [p.prompt for p in held_out[:16]],
                    [p.chosen for p in held_out[:16]],
                    {layer: vector.direction(layer) for layer in vector.layers},
                )
                inside = go.Figure()
                inside.add_trace(
                    go.Bar(x=list(view.layers), y=view.relative_change, name="relative change of the residual stream")
                )
                inside.add_trace(
                    go.Scatter(
                        x=list(view.layers), y=view.cosine_with_steering, name="cosine with the steering vector", yaxis="y2"
                    )
                )
                inside.update_layout(
                    yaxis={"title": "|Δh| / |h|"},
                    yaxis2={"title": "cosine", "overlaying": "y", "side": "right", "range": [-1, 1]},
                    xaxis={"title": "layer"},
                    legend={"orientation": "h", "y": -0.25},
                )
                st.plotly_chart(base_layout(inside, height=360, title="Inside view: what DPO changed, layer by layer"))
            else:
                st.caption("Train a DPO adapter (third tab) to add it to the comparison and see the inside view.")
