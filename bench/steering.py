"""Steering: steered generation speed against raw HF generate, and sweep throughput."""

from __future__ import annotations

import time

import torch

from bench.timing import measure, raw_greedy, table
from interp import generate, load_model
from interp.loading import load_hf_model
from interp.tokens import tokenize
from steering import SteeringSweep, built_in, mean_difference, steer


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    reference, _ = load_hf_model(model.folder)
    vector = mean_difference(model, built_in("sentiment"), layers=[4, 5, 6], position="mean")
    prompt, new_tokens = "I think the weather today is", 64
    ids = torch.tensor([tokenize(model, prompt)])
    repeats = 2 if quick else 5

    hf_generate = raw_greedy(reference, ids, new_tokens)

    def steered():
        with steer(model, vector, 3.0, layers=[4]):
            generate(model, prompt, max_new_tokens=new_tokens, stop_at_eos=False)

    raw, ours = measure(hf_generate, repeats=repeats), measure(steered, repeats=repeats)
    start = time.perf_counter()
    spec = SteeringSweep(vector.at_layers([4, 5]), layers=(4, 5), coefficients=(2.0, 3.0))  # the spec's defaults, as on the page
    result = spec.run(model)
    minutes = (time.perf_counter() - start) / 60
    rows = [
        ["raw HF generate (unsteered, KV cache)", f"{new_tokens / raw.median:.1f} tok/s", "1.00x"],
        ["interp.generate inside steer() (layer 4)", f"{new_tokens / ours.median:.1f} tok/s", f"{raw.median / ours.median:.2f}x"],
    ]
    return (
        "### Steered generation, 64 new tokens, greedy (SmolLM2-135M-Instruct)\n\n"
        + table(["path", "speed", "vs raw HF"], rows)
        + f"\n\nSweep: {len(result.cells)} cells (+ the unsteered baseline) of {len(result.baseline.texts)} samples "
        + f"x {spec.max_new_tokens} tokens "
        + f"each in {minutes * 60:.0f} s = {len(result.cells) / minutes:.1f} cells/minute."
    )
