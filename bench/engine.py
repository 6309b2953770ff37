"""The engine (issue 12): concurrent steered requests against one alone, and decode throughput by batch size."""

from __future__ import annotations

import time

from bench.timing import measure, table
from interp import load_model
from interp.engine import Engine, GenerationRequest
from interp.tokens import tokenize
from steering import built_in, mean_difference
from steering.apply import steering_additions

PROMPT, NEW_TOKENS = "I think the weather today is", 30


def requests(model, vector, n: int) -> list[GenerationRequest]:
    """``n`` steered requests, each with its own layer and coefficient (what eight people tuning at once send)."""
    out = []
    for i in range(n):
        layer, coefficient = (4, 5, 6)[i % 3], (-1) ** i * (2.0 + 0.5 * (i % 4))
        additions = steering_additions(model, vector, coefficient, layers=[layer])
        out.append(GenerationRequest(PROMPT, tuple(tokenize(model, PROMPT)), max_new_tokens=NEW_TOKENS, stop_at_eos=False,
                                     additions=additions))  # fmt: skip
    return out


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    vector = mean_difference(model, built_in("sentiment"), layers=[4, 5, 6], position="mean")
    engine = Engine(model)
    repeats = 1 if quick else 3
    try:
        one = measure(lambda: engine.submit(requests(model, vector, 1)[0]).result(), repeats=repeats)

        def eight():
            streams = [engine.submit(r) for r in requests(model, vector, 8)]
            for stream in streams:
                stream.result()

        together = measure(eight, repeats=repeats)
        first_token = []
        for _ in range(repeats):
            stream = engine.submit(requests(model, vector, 1)[0])
            stream.result()
            first_token.append(stream.first_token_seconds)
        throughput = []
        for rows in (1, 4, 16):
            batch = requests(model, vector, rows)
            start = time.perf_counter()
            for stream in [engine.submit(r) for r in batch]:
                stream.result()
            throughput.append((rows, rows * NEW_TOKENS / (time.perf_counter() - start)))
    finally:
        engine.close()
    base = throughput[0][1]
    rows = [
        ["1 steered request alone", f"{one.median:.2f} s", "1.00x"],
        [
            "8 steered requests at once (different layers and coefficients)",
            f"{together.median:.2f} s",
            f"{together.median / one.median:.2f}x",
        ],
    ]
    speed = [[f"{n} rows", f"{tps:.1f} tok/s", f"{tps / base:.2f}x"] for n, tps in throughput]
    return (
        f"### Engine: {NEW_TOKENS}-token steered generations, greedy (SmolLM2-135M-Instruct)\n\n"
        + table(["work", "wall time", "vs one alone"], rows)
        + f"\n\nFirst token of a steered request (engine idle): {min(first_token) * 1e3:.0f} ms.\n\n"
        + table(["decode batch", "tokens/s (all rows)", "vs 1 row"], speed)
    )
