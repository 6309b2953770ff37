"""Attention: prompt to all 270 patterns, head scores (first and cached), logit lens."""

from __future__ import annotations

import time

from bench.timing import measure, table
from interp import load_model
from interp.attention import attention_patterns, compute_head_scores, head_scores
from interp.lens import logit_lens
from interp.tokens import tokenize

PROMPT_64 = " ".join(["The quick brown fox jumps over the lazy dog."] * 7)


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    ids = tokenize(model, PROMPT_64)
    prompt = model.tokenizer.decode(ids[:64])
    n_tokens = len(tokenize(model, prompt))
    repeats = 3 if quick else 7
    patterns = measure(lambda: attention_patterns(model, prompt), repeats=repeats)
    lens = measure(lambda: logit_lens(model, prompt, " dog"), repeats=repeats)
    scores_first = measure(lambda: compute_head_scores(model), repeats=2 if quick else 3, warmup=0)
    head_scores(model)
    start = time.perf_counter()
    head_scores(model)
    cached = time.perf_counter() - start
    rows = [
        [f"all {model.info.n_layers * model.info.n_heads} patterns, {n_tokens}-token prompt", patterns.cell()],
        ["logit lens, all layers x positions, with a target", lens.cell()],
        ["head scores, computed (8 x 64-token probes)", scores_first.cell("s", 1, 2)],
        ["head scores, cached per model", f"{cached * 1e3:.3f} ms"],
    ]
    return "### Attention explorer (SmolLM2-135M-Instruct)\n\n" + table(["step", "time"], rows)
