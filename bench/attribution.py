"""Attribution: cost and time per method on a 16-token prompt, throughput, batch speed."""

from __future__ import annotations

import time

import torch

from bench.timing import measure, table
from interp import intervene, load_model
from interp.attribution import METHODS, Target, attribute
from interp.attribution_batch import run_attribution_batch
from interp.prompt_files import PromptRow
from interp.tokens import tokenize

PROMPT = "When Mary and John went to the store after lunch, John gave a drink to"


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    n = len(tokenize(model, PROMPT))
    ids = torch.tensor([tokenize(model, PROMPT)] * 32)

    def batched_forward():
        with intervene(model), torch.inference_mode():
            model.bridge(ids)

    def batched_forward_last_logit():  # the attribution methods unembed only the position they explain
        with intervene(model), torch.inference_mode():
            model.bridge(ids, logits_to_keep=1)

    forward = measure(batched_forward, repeats=3 if quick else 5)
    forward_rate = ids.numel() / forward.median
    forward_last = measure(batched_forward_last_logit, repeats=3 if quick else 5)
    forward_last_rate = ids.numel() / forward_last.median
    attribute(model, PROMPT, None, "shap", max_evals=40)  # shap's numba kernels compile on first use
    rows = []
    for method in METHODS:
        result = attribute(model, PROMPT, Target.next_token(), method)
        rate = result.n_evaluations * n / result.seconds
        extra = "" if result.convergence_delta is None else f"delta {result.convergence_delta:+.2f}"
        rows.append(
            [METHODS[method].title, f"{result.n_evaluations}", f"{result.seconds:.2f} s", f"{rate:,.0f} tok/s",
             f"{rate / forward_rate:.2f}x", f"{rate / forward_last_rate:.2f}x", extra]
        )  # fmt: skip
    prompts = [
        PromptRow(i + 2, text)
        for i, text in enumerate([PROMPT, "The Eiffel Tower is in the city of", "I love dogs because"] * (1 if quick else 2))
    ]
    start = time.perf_counter()
    run_attribution_batch(model, prompts, ["feature_ablation"], with_faithfulness=True)
    per_minute = len(prompts) / (time.perf_counter() - start) * 60
    header = f"### Attribution on a {n}-token prompt (SmolLM2-135M-Instruct, default settings)\n\n"
    columns = [
        "method",
        "model evaluations",
        "wall time",
        "throughput",
        "vs batched forward",
        "vs forward, last logit only",
        "note",
    ]
    body = table(columns, rows)
    footer = (
        f"\n\nBatched forward baseline: 32 x {n} tokens in {forward.cell()} = {forward_rate:,.0f} tok/s; with the "
        f"unembedding at the last position only (as the methods run): {forward_last.cell()} = {forward_last_rate:,.0f} tok/s.\n"
        f"Batch (feature ablation + faithfulness check): {per_minute:.1f} prompts/minute."
    )
    return header + body + footer
