"""What a run will cost in seconds, said before it starts.

A method's cost is counted in model evaluations (rows through the model); a person waits in
seconds. The bridge between the two is the model's measured throughput: one timed, batched forward
pass of the actual prompt gives the seconds one evaluation takes on this machine, at this prompt
length. An estimate multiplies the two; it is a guide (the timed pass is warm, batched and without
gradients, so gradient methods say how much dearer they are), not a promise.

Example:
    >>> per_row = seconds_per_evaluation(model, tokenize(model, prompt))
    >>> estimate_seconds(320, per_row).describe()
    'about 40 s (320 forward passes at 0.12 s)'
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from interp.hooks import intervene
from interp.loading import LoadedModel

LONG_RUN_SECONDS = 60.0  # beyond this an estimate is a warning, not a caption
TIMED_ROWS = 8  # rows in the timed batch: attribution and patching run batches, not single rows


@dataclasses.dataclass(frozen=True)
class CostEstimate:
    """How long a run of ``evaluations`` model evaluations will take at ``seconds_per_evaluation`` each."""

    evaluations: int
    seconds_per_evaluation: float

    @property
    def seconds(self) -> float:
        return self.evaluations * self.seconds_per_evaluation

    @property
    def long(self) -> bool:
        """Whether the wait is long enough to warn about (over :data:`LONG_RUN_SECONDS`)."""
        return self.seconds > LONG_RUN_SECONDS

    def describe(self) -> str:
        """E.g. ``"about 40 s (320 forward passes at 0.12 s)"``."""
        each = duration(self.seconds_per_evaluation, about=False)
        return f"{duration(self.seconds)} ({self.evaluations:,} forward passes at {each})"

    def warning(self, shorter: str = "fewer steps or prompts shorten it") -> str:
        """What a page shows when the run is long: ``"This will take about 4 min; fewer steps or prompts shorten it."``"""
        return f"This will take {duration(self.seconds)}; {shorter}."

    def __add__(self, other: CostEstimate) -> CostEstimate:
        """Two parts of one run (e.g. a method and its faithfulness check), at their combined average rate."""
        total = self.evaluations + other.evaluations
        seconds = self.seconds + other.seconds
        return CostEstimate(total, seconds / total if total else self.seconds_per_evaluation)


def duration(seconds: float, *, about: bool = True) -> str:
    """``"about 40 s"``, ``"about 4 min"``, ``"about 1.5 h"``; ``about=False`` for a measured one (``"0.12 s"``, ``"8 ms"``)."""
    prefix = "about " if about else ""
    if seconds < 0.1 and not about:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 1:
        return "under 1 s" if about else f"{seconds:.2g} s"
    if seconds < 90:
        return f"{prefix}{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{prefix}{seconds / 60:.0f} min"
    return f"{prefix}{seconds / 3600:.1f} h"


def estimate_seconds(evaluations: int, seconds_per_evaluation: float) -> CostEstimate:
    """The estimate for ``evaluations`` model evaluations at the measured ``seconds_per_evaluation``.

    Example:
        >>> estimate_seconds(320, 0.125).seconds
        40.0
    """
    return CostEstimate(int(evaluations), float(seconds_per_evaluation))


def seconds_per_evaluation(model: LoadedModel, token_ids: Sequence[int], *, rows: int = TIMED_ROWS) -> float:
    """Seconds one model evaluation of ``token_ids`` takes: a warm, timed batch of ``rows`` copies, per row.

    One untimed row first, so lazy initialisation is not counted. Holds the model's lock like any run.
    """
    ids = torch.tensor([list(token_ids)], dtype=torch.long, device=model.device)
    with intervene(model), torch.inference_mode():
        model.bridge(ids, logits_to_keep=1)
        start = time.perf_counter()
        model.bridge(ids.expand(rows, -1), logits_to_keep=1)
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)
        return (time.perf_counter() - start) / rows
