"""Do SAE features steer as well as a mean-difference vector? (AxBench's question, offline on SmolLM2.)

    .venv/bin/python -m bench feature_steering

The built-in sentiment pairs' mean-difference vector at layer 9 (`position="mean"`) against the shipped SAE's
features at the same hook point. Which feature stands for "positive sentiment" is chosen two ways: the feature
whose decoder direction is closest to the vector (an oracle choice, the SAE's best case) and the feature that
promotes " happy" most through the unembedding (what a user searching the page would pick). Each is swept at unit
norm over the same added norms as the unit vector, on the same prompts and seeds; VADER scores the text.
"""

from __future__ import annotations

import time

from bench.timing import table
from features.dashboard import features_promoting
from features.shipped import shipped_sae
from features.steer import compare_with_vector
from interp import load_model
from interp.tokens import single_token_id
from steering import NEUTRAL_PROMPTS, built_in, mean_difference
from steering.scores import SENTIMENT

ADDED_NORMS = (16.0, 32.0, 48.0)


def cell_rows(name: str, swept) -> list[list[str]]:
    baseline = swept.baseline.mean_behaviour
    return [[name, f"{c.coefficient:g}", f"{c.behaviour - baseline:+.3f}", f"×{c.perplexity_ratio:.2f}", f"{c.kl:.3f}"]
            for c in swept.cells]  # fmt: skip


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    sae = shipped_sae(model).sae
    vector = mean_difference(model, built_in("sentiment"), layers=[sae.layer], position="mean")
    unit = vector.direction(sae.layer) / vector.direction(sae.layer).norm()
    oracle = int((sae.decoder_weight @ unit).argmax())
    searched = features_promoting(model, sae, single_token_id(model, " happy"), n=1)[0][0]
    prompts = NEUTRAL_PROMPTS[:4] if quick else NEUTRAL_PROMPTS
    rows = []
    start = time.perf_counter()
    vector_rows = None
    for how, latent in (("closest to the vector", oracle), ('promotes " happy" most', searched)):
        result = compare_with_vector(model, sae, latent, vector, SENTIMENT, added_norms=ADDED_NORMS, prompts=prompts,
                                     n_samples=2 if quick else 4)  # fmt: skip
        rows += cell_rows(f"feature {latent} ({how}; cosine {result.cosine:+.2f})", result.feature)
        vector_rows = vector_rows or cell_rows("mean difference (unit)", result.vector)
    rows = vector_rows + rows
    seconds = time.perf_counter() - start
    header = ["direction", "added norm", "VADER gain", "perplexity", "KL (nats)"]
    return (
        f"### Feature vs mean difference, sentiment, SmolLM2-135M-Instruct, {sae.hook_name}\n\n"
        f"{len(prompts)} neutral prompts × {2 if quick else 4} samples × 30 tokens per cell, same seeds for every "
        f"direction; the residual stream's norm there is ≈ 130. {seconds:.0f} s on CPU.\n\n" + table(header, rows)
    )
