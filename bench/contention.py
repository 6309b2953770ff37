"""Decode speed when the machine is shared: OpenMP's waiting policy with and without competing busy processes.

Each measurement runs in a fresh process (libgomp reads OMP_WAIT_POLICY once, when torch loads it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.timing import table

STEPS_SCRIPT = r"""
import time, torch
from transformers import DynamicCache
from interp import load_model
m = load_model(None, device="cpu")
ids = torch.tensor([m.tokenizer.encode("I think the weather today is")])
best = []
for _ in range(3):
    cache = DynamicCache(config=m.hf_model.config)
    with torch.inference_mode():
        out = m.bridge(ids, past_key_values=cache, logits_to_keep=1); tok = out[:, -1:].argmax(-1)
        t = time.perf_counter()
        for _ in range(10):
            out = m.bridge(tok, past_key_values=cache, logits_to_keep=1); tok = out[:, -1:].argmax(-1)
        best.append((time.perf_counter() - t) / 10)
print(min(best))
"""


POLICIES = {  # name: the OpenMP environment of the measured process
    "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "libgomp's default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=100000 (Steerscope's default)": {"GOMP_SPINCOUNT": "100000"},
}


def step_seconds(openmp: dict[str, str], competitors: int) -> float:
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
    try:
        time.sleep(0.5)
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if not openmp:
            env["OMP_WAIT_POLICY"] = ""  # set (so Steerscope leaves it alone) but empty: libgomp's own default
        env.update(openmp)
        out = subprocess.run([sys.executable, "-c", STEPS_SCRIPT], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        for process in busy:
            process.kill()
            process.wait()


def run(quick: bool = False) -> str:
    rows = []
    for name, openmp in POLICIES.items():
        idle, shared = step_seconds(openmp, 0), step_seconds(openmp, 2)
        rows.append([name, f"{idle * 1e3:.0f} ms", f"{shared * 1e3:.0f} ms", f"{shared / idle:.2f}x"])
    return "### Decode under CPU contention (SmolLM2, one decode step through the bridge, best of 3 x 10 steps)\n\n" + table(
        ["OpenMP waiting", "idle machine", "2 other busy processes", "slowdown"], rows
    )
