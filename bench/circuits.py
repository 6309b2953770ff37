"""Circuits: a full head-patching sweep on SmolLM2 (IOI) — activation vs attribution patching."""

from __future__ import annotations

from scipy.stats import spearmanr

from bench.timing import table
from interp import load_model
from interp.circuits import attribution_patch, patch_sweep
from interp.circuits.tasks import ioi_task


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    task = ioi_task(model, n_prompts=2 if quick else 4)
    exact = patch_sweep(model, task.clean, task.corrupted, task.metric, "heads")
    estimate = attribution_patch(model, task.clean, task.corrupted, task.metric, "heads")
    agreement = spearmanr(exact.values.ravel(), estimate.values.ravel()).statistic
    prompts, tokens = task.clean.shape
    rows = [
        ["activation patching (270 heads, batched)", f"{exact.seconds:.1f} s", f"{exact.forward_rows}", "1.00x"],
        ["attribution patching (2 forward + 1 backward)", f"{estimate.seconds:.2f} s", f"{estimate.forward_rows}",
         f"{exact.seconds / estimate.seconds:.0f}x faster"],
    ]  # fmt: skip
    return (
        f"### Head patching sweep, IOI preset ({prompts} prompts x {tokens} tokens, SmolLM2-135M-Instruct)\n\n"
        + table(["method", "wall time", "forward rows", "vs activation patching"], rows)
        + f"\n\nRank agreement (Spearman over 270 heads): {agreement:.2f}. "
        + f"Top head by activation patching: {exact.ranked(1)[0][0]} "
        + f"({exact.ranked(1)[0][1]:.2f} of the clean logit difference recovered)."
    )
