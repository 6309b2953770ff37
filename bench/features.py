"""Features (SAEs): training throughput with the model stopped after the SAE's layer, and features per prompt.

    .venv/bin/python -m bench features

Baselines in the same process, on the same lean forward path: the full 30-block forward pass for the activations
(what an untruncated pipeline pays), and the plain forward pass of the prompt for the page's "features per token".
"""

from __future__ import annotations

import torch

from bench.timing import measure, table
from features.activations import hook_activations, token_stream
from features.corpus import load_corpus
from features.dashboard import prompt_features
from features.shipped import shipped_sae
from features.train import TopKSettings, TopKTrainer
from interp import load_model
from interp.lean import lean_model

PROMPT = "The Eiffel Tower is in the city of Paris, and the Colosseum is in Rome."


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    sae = shipped_sae(model).sae
    stream = token_stream(model, load_corpus("pydoc-topics").documents, context_tokens=128)
    batch = stream.contexts[:16]
    tokens = batch.shape[0] * (batch.shape[1] - 1)
    repeats = 2 if quick else 5
    truncated = measure(lambda: hook_activations(model, batch, sae.hook_name), repeats=repeats)

    def full_forward():
        with torch.inference_mode():
            lean_model(model)(batch, use_cache=False)

    full = measure(full_forward, repeats=repeats)
    x = hook_activations(model, batch, sae.hook_name)[:, 1:].reshape(-1, sae.d_in)
    trainer = TopKTrainer(TopKSettings(sae.d_in, sae.d_sae, sae.k, learning_rate=1e-3))
    step = measure(lambda: trainer.step(x), repeats=repeats)
    per_prompt = measure(lambda: prompt_features(model, sae, PROMPT), repeats=repeats * 2)

    def plain_prompt():
        ids = model.tokenizer(PROMPT, return_tensors="pt").input_ids
        with torch.inference_mode():
            lean_model(model)(ids, use_cache=False)

    plain = measure(plain_prompt, repeats=repeats * 2)
    n_prompt = len(model.tokenizer(PROMPT).input_ids)
    rows = [
        ["activations to the SAE's layer (16 × 128 tokens)", f"{tokens / truncated.median:,.0f} tok/s",
         f"{full.median / truncated.median:.2f}x as fast as the full forward ({tokens / full.median:,.0f} tok/s)"],
        [f"SAE step ({sae.d_sae} × {sae.d_in}, k {sae.k}, Adam + AuxK)", f"{tokens / step.median:,.0f} tok/s", ""],
        ["training, both together", f"{tokens / (truncated.median + step.median):,.0f} tok/s", ""],
        [f"features per token of a {n_prompt}-token prompt", per_prompt.cell(),
         f"{per_prompt.median / plain.median:.2f}x the time of a full forward pass ({plain.cell()})"],
    ]  # fmt: skip
    return f"### Features: {sae.describe()} on SmolLM2-135M-Instruct, CPU\n\n" + table(
        ["what", "speed", "against the baseline"], rows
    )
