"""Reward model scoring speed and DPO training steps per minute on the CPU."""

from __future__ import annotations

import tempfile
import time

from bench.timing import measure, table
from interp import load_model
from steering.rlhf import builtin_preferences, split_by_prompt, train_dpo, train_reward_model


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    train, test = split_by_prompt(builtin_preferences())
    start = time.perf_counter()
    trained = train_reward_model(model, train, test)
    train_seconds = time.perf_counter() - start
    reward = trained.reward_model
    texts = [p.chosen for p in train[:32]]
    prompts = [p.prompt for p in train[:32]]
    scoring = measure(lambda: reward.score(model, prompts, texts), repeats=2 if quick else 3)
    steps = 5 if quick else 10
    dpo = train_dpo(model, train, tempfile.mkdtemp(prefix="bench-dpo-"), max_steps=steps, batch_size=4)
    rows = [
        [
            "train the reward model (4 candidate layers, 120 pairs)",
            f"{train_seconds:.0f} s",
            f"held-out accuracy {100 * trained.test_accuracy:.1f}%",
        ],
        ["score 32 replies (batched)", scoring.cell("s", 1, 2), f"{32 / scoring.median:.1f} texts/s"],
        [
            f"DPO, {dpo.steps_done} steps of 4 pairs (LoRA r=8)",
            f"{dpo.seconds:.0f} s",
            f"{60 * dpo.steps_done / dpo.seconds:.1f} steps/minute",
        ],
    ]
    return "### Reward model and DPO on SmolLM2-135M-Instruct (CPU)\n\n" + table(["step", "time", "rate"], rows)
