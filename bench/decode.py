"""Decode speed for the engine section, in a process whose main thread never computes: `python -m bench.decode N`.

Every piece of work runs on a thread that ends with it and each engine is closed after its measurement, so the
engine's thread is the only one holding OpenMP workers while it decodes — as in the app and the server
(interp/threads.py says why that matters: libgomp stops spin-waiting once a process has more OpenMP threads than
cores). Prints one JSON line: the rows of bench/engine.py's "Decode speed" table.
"""

from __future__ import annotations

import json
import sys

import torch

import interp  # noqa: F401  (before torch: the OpenMP defaults)
from bench.timing import measure, raw_greedy
from interp.threads import on_own_thread

PROMPT = "I think the weather today is"
AGREEMENT_PROMPTS = [
    "I think the weather today is", "The capital of France is", "My favourite food", "Once upon a time",
    "When Mary and John went to the store, John gave a drink to", "The best way to learn is", "Here is a short poem:",
    "The meeting is scheduled for", "Dogs are", "In 1969, the first", "The recipe needs", "My brother told me that",
    "The stock market", "A good friend is someone who", "The train leaves at", "Scientists have discovered",
]  # fmt: skip


def steered_request(model, vector, i: int, tokens: int):
    from interp.engine import GenerationRequest
    from interp.tokens import tokenize
    from steering.apply import steering_additions

    layer, coefficient = (4, 5, 6)[i % 3], (-1) ** i * (2.0 + 0.5 * (i % 4))
    return GenerationRequest(PROMPT, tuple(tokenize(model, PROMPT)), max_new_tokens=tokens, stop_at_eos=False,
                             additions=steering_additions(model, vector, coefficient, layers=[layer]))  # fmt: skip


def engine_speed(model, requests, repeats: int) -> float:
    """Seconds to finish ``requests`` together on a fresh engine for ``model`` (closed afterwards)."""
    from interp.engine import Engine

    engine = Engine(model)
    try:
        # The caller only waits on the streams: the engine's thread is the only one computing.
        return measure(lambda: [s.result() for s in [engine.submit(r) for r in requests]], repeats=repeats).median
    finally:
        engine.close()


def main(repeats: int) -> list[list[str]]:
    from interp import load_model
    from interp.fast import fast_agreement, fast_copy
    from interp.loading import load_hf_model
    from interp.tokens import tokenize
    from steering import built_in, mean_difference
    from steering.fast import sweep_agreement
    from steering.scores import SENTIMENT

    model = on_own_thread(lambda: load_model(None, device="cpu"))
    vector = on_own_thread(lambda: mean_difference(model, built_in("sentiment"), layers=[4, 5, 6], position="mean"))
    reference = on_own_thread(lambda: load_hf_model(model.folder)[0])
    fast = on_own_thread(lambda: fast_copy(model))
    rows = []
    for n in (1, 16):
        ids = torch.tensor([tokenize(model, PROMPT)] * n)
        raw = on_own_thread(lambda ids=ids: measure(raw_greedy(reference, ids, 64), repeats=repeats).median)
        exact = on_own_thread(lambda n=n: engine_speed(model, [steered_request(model, vector, i, 64) for i in range(n)], repeats))
        quick = on_own_thread(lambda n=n: engine_speed(fast, [steered_request(fast, vector, i, 64) for i in range(n)], repeats))
        speed = {name: n * 64 / seconds for name, seconds in (("raw", raw), ("ours", exact), ("fast", quick))}
        rows += [
            [f"{n} row(s): raw HF generate, fp32, unsteered", f"{speed['raw']:.1f} tok/s", "1.00x", ""],
            [f"{n} row(s): engine, fp32, steered", f"{speed['ours']:.1f} tok/s", f"{speed['ours'] / speed['raw']:.2f}x",
             "≥ 1.0x"],
            [f"{n} row(s): engine, fast mode (bf16), steered", f"{speed['fast']:.1f} tok/s",
             f"{speed['fast'] / speed['raw']:.2f}x", "≥ 1.5x"],
        ]  # fmt: skip
    agreement = on_own_thread(lambda: fast_agreement(model, fast, AGREEMENT_PROMPTS, n_tokens=24))
    rows.append(["fast mode agreement with fp32", agreement.describe(), "", ""])
    on_a_sweep = on_own_thread(lambda: sweep_agreement(model, fast, vector, SENTIMENT, layers=[4, 6], coefficients=[-4.0, 4.0],
                                                       prompts=AGREEMENT_PROMPTS[:4]))  # fmt: skip
    rows.append(["fast mode on a sweep (sentiment, layers 4 and 6, ×±4)", on_a_sweep.describe(), "", ""])
    return rows


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
