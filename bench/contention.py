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


def step_seconds(policy: str, competitors: int) -> float:
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
    try:
        time.sleep(0.5)
        env = {**os.environ, "OMP_WAIT_POLICY": policy}
        out = subprocess.run([sys.executable, "-c", STEPS_SCRIPT], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        for process in busy:
            process.kill()
            process.wait()


def run(quick: bool = False) -> str:
    rows = []
    for competitors in (0, 2):
        active, passive = step_seconds("ACTIVE", competitors), step_seconds("PASSIVE", competitors)
        ratio = f"{active / passive:.2f}x"
        rows.append([f"{competitors} busy processes", f"{active * 1e3:.0f} ms", f"{passive * 1e3:.0f} ms", ratio])
    return "### Decode under CPU contention (SmolLM2, one decode step through the bridge, best of 3 x 10 steps)\n\n" + table(
        ["machine", "OMP_WAIT_POLICY=ACTIVE", "PASSIVE (Steerscope's default)", "ACTIVE / PASSIVE"], rows
    )
