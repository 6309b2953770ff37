"""Timing helpers shared by the benchmark sections."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Timing:
    median: float
    low: float
    high: float
    runs: int

    def cell(self, unit: str = "ms", scale: float = 1e3, digits: int = 1) -> str:
        return f"{self.median * scale:.{digits}f} {unit} ({self.low * scale:.{digits}f}–{self.high * scale:.{digits}f})"


def measure(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 1) -> Timing:
    """Seconds per call of ``fn``: median, min and max over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def raw_greedy(reference, ids, new_tokens: int) -> Callable[[], object]:
    """The baseline every decoding figure is compared with: Hugging Face generate, KV cache, greedy, exactly N tokens."""
    import torch

    def run() -> object:
        with torch.no_grad():
            return reference.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )

    return run
