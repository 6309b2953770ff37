"""The engine (issue 12): every figure the issue asks for, as ratios measured in this one run.

* tune step (1 prompt x 2 samples x 30 tokens, steered + damage, baseline cached) against the serial path that
  re-generated the unsteered samples every time (what the Steering page did before the engine);
* time to the first steered token against one forward pass of the prompt;
* 8 concurrent steered requests (different vectors, coefficients, layers) against one alone;
* an interactive 30-token generation while an IOI head-patching sweep runs, against the same generation idle;
* decode throughput at 16 rows against one row; steered decode against raw Hugging Face ``generate``;
* fast mode (bf16) against raw HF fp32, its agreement with fp32, and peak memory with it loaded.

llama.cpp on the same GGUF is in ``bench/llama.py``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time

import torch

from bench.timing import measure, table
from interp import load_model
from interp.engine import Engine, GenerationRequest
from interp.forward import run_logits
from interp.generation import generate_batch_serial
from interp.tokens import tokenize
from steering import built_in, mean_difference
from steering.apply import steering_additions, steering_hooks
from steering.live import UnsteeredSamples, start_steered
from steering.runs import SteeringEvaluation
from steering.scores import SENTIMENT
from steering.sweep import score_texts

PROMPT, NEW_TOKENS = "I think the weather today is", 30


def steered_request(model, vector, i: int, tokens: int = NEW_TOKENS) -> GenerationRequest:
    layer, coefficient = (4, 5, 6)[i % 3], (-1) ** i * (2.0 + 0.5 * (i % 4))
    return GenerationRequest(PROMPT, tuple(tokenize(model, PROMPT)), max_new_tokens=tokens, stop_at_eos=False,
                             additions=steering_additions(model, vector, coefficient, layers=[layer]))  # fmt: skip


def run_all(engine: Engine, requests: list[GenerationRequest]) -> None:
    for stream in [engine.submit(r) for r in requests]:
        stream.result()


def tune_figures(model, vector, repeats: int) -> list[list[str]]:
    spec = SteeringEvaluation(vector.at_layers([4]), 4, 3.0, prompts=(PROMPT,), n_samples=2, max_new_tokens=NEW_TOKENS)
    options = {"max_new_tokens": NEW_TOKENS, "n_samples": 2, "temperature": spec.temperature, "seed": spec.seed}
    hooks = steering_hooks(model, spec.vector, spec.coefficient, layers=[4])

    def serial_tune():  # before the engine: both sets of samples, every slider move
        plain = generate_batch_serial(model, [PROMPT], **options)[0]
        steered = generate_batch_serial(model, [PROMPT], hooks=hooks, **options)[0]
        score_texts(model, plain, SENTIMENT), score_texts(model, steered, SENTIMENT)

    baseline = UnsteeredSamples.of(spec).run(model)  # cached by the page after the first move

    def live_tune():
        start_steered(model, spec).evaluation(model, baseline)

    before, now = measure(serial_tune, repeats=repeats), measure(live_tune, repeats=repeats)
    ids = torch.tensor([tokenize(model, PROMPT)])
    prompt_pass = measure(lambda: run_logits(model, ids), repeats=5)
    firsts = []
    for _ in range(repeats + 2):
        live = start_steered(model, spec)
        next(live.events())
        firsts.append(live.streams[0].first_token_seconds)
        live.cancel()
        live.streams[0].result()
    first = statistics.median(firsts)
    return [
        ["tune step: serial, both sample sets (before)", f"{before.median:.2f} s", "1.00x", ""],
        ["tune step: engine, baseline cached", f"{now.median:.2f} s", f"{now.median / before.median:.2f}x", "≤ 0.5x"],
        ["one forward pass of the prompt", f"{prompt_pass.median * 1e3:.0f} ms", "1.00x", ""],
        ["first steered token shown", f"{first * 1e3:.0f} ms", f"{first / prompt_pass.median:.2f}x", "≤ 2x"],
    ]


def concurrency_figures(model, vector, engine: Engine, repeats: int) -> list[list[str]]:
    one = measure(lambda: run_all(engine, [steered_request(model, vector, 0)]), repeats=repeats)
    eight = measure(lambda: run_all(engine, [steered_request(model, vector, i) for i in range(8)]), repeats=repeats)
    return [
        ["1 steered request alone", f"{one.median:.2f} s", "1.00x", ""],
        ["8 at once (own layers, coefficients)", f"{eight.median:.2f} s", f"{eight.median / one.median:.2f}x", "≤ 2.5x"],
    ]


def sweep_figures(model, vector, engine: Engine) -> list[list[str]]:
    from interp.circuits import CircuitTask, PatchingRun

    idle = measure(lambda: run_all(engine, [steered_request(model, vector, 0)]), repeats=3)
    sweep_done = threading.Event()

    def sweep():
        PatchingRun(CircuitTask("ioi"), sites="heads").run(model)
        sweep_done.set()

    thread = threading.Thread(target=sweep)
    thread.start()
    time.sleep(2.0)  # the sweep is under way
    busy = []
    while not sweep_done.is_set() and len(busy) < 3:
        start = time.perf_counter()
        run_all(engine, [steered_request(model, vector, 0)])
        busy.append(time.perf_counter() - start)
    thread.join()
    during = statistics.median(busy) if busy else float("nan")
    return [
        ["30-token generation, idle", f"{idle.median:.2f} s", "1.00x", ""],
        ["the same while an IOI head-patching sweep runs", f"{during:.2f} s", f"{during / idle.median:.2f}x", "≤ 1.5x"],
    ]


def throughput_figures(model, vector, engine: Engine) -> tuple[list[list[str]], float]:
    rows, speeds = [], {}
    for n in (1, 4, 16):
        batch = [steered_request(model, vector, i, tokens=64) for i in range(n)]
        start = time.perf_counter()
        run_all(engine, batch)
        speeds[n] = n * 64 / (time.perf_counter() - start)
        rows.append([f"{n} rows", f"{speeds[n]:.1f} tok/s", f"{speeds[n] / speeds[1]:.2f}x", "≥ 4x at 16" if n == 16 else ""])
    return rows, speeds[1]


def decode_figures(repeats: int) -> list[list[str]]:
    """One row (an interactive sample) and 16 rows (a sweep's batch): raw HF fp32, the engine fp32, fast mode.

    Measured in a process of their own (``python -m bench.decode``) whose main thread never computes: libgomp stops
    spin-waiting once a process has more OpenMP threads than cores, and a thread that computed once keeps its
    OpenMP workers until it ends. The app's and the server's main threads never compute (the server loads its model
    on a thread that ends); a benchmark that loaded the model on its main thread would measure a throttled engine
    (bf16 decode 1.45x slower, docs/PERFORMANCE.md)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.decode", str(repeats)], capture_output=True, text=True, check=True, timeout=1800
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


MEMORY_SCRIPT = r"""
import resource, sys
from interp import load_model
from steering import built_in, mean_difference
from steering.live import UnsteeredSamples, start_steered
from steering.runs import SteeringEvaluation
model = load_model(None, device="cpu")
work = model
if sys.argv[1] == "fast":
    from interp.fast import fast_copy
    work = fast_copy(model)
vector = mean_difference(model, built_in("sentiment"), layers=[4], position="mean")
spec = SteeringEvaluation(vector, 4, 3.0, prompts=("I think the weather today is",), n_samples=2, max_new_tokens=30)
start_steered(work, spec).evaluation(work, UnsteeredSamples.of(spec).run(work))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory_figures() -> list[list[str]]:
    peak = {}
    for mode in ("exact", "fast"):
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mode], capture_output=True, text=True, check=True)
        peak[mode] = int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB
    return [
        ["peak RSS, a tune step in fp32", f"{peak['exact']:.0f} MiB", "1.00x", ""],
        ["peak RSS, fast mode loaded beside it", f"{peak['fast']:.0f} MiB", f"{peak['fast'] / peak['exact']:.2f}x", "≤ 1.5x"],
    ]


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    vector = mean_difference(model, built_in("sentiment"), layers=[4, 5, 6], position="mean")
    repeats = 2 if quick else 3
    engine = Engine(model)
    try:
        tune = tune_figures(model, vector, repeats)
        concurrency = concurrency_figures(model, vector, engine, repeats)
        sweep = sweep_figures(model, vector, engine)
        throughput, _ = throughput_figures(model, vector, engine)
    finally:
        engine.close()
    decode = decode_figures(repeats)
    memory = memory_figures()
    header = ["work", "measured", "ratio", "target"]
    return "\n\n".join([
        "### Engine (SmolLM2-135M-Instruct, greedy unless sampled by the spec)",
        "Tune step and first token\n\n" + table(header, tune),
        "Concurrent sessions\n\n" + table(header, concurrency),
        "Interactive work during a long analysis\n\n" + table(header, sweep),
        "Decode throughput by batch size (64 tokens per row)\n\n" + table(header, throughput),
        "Decode speed, 64 tokens per row\n\n" + table(header, decode),
        "Memory\n\n" + table(header, memory),
    ])  # fmt: skip
