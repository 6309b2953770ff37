"""Compare two kept runs of one kind: which settings differ, and how far apart their numbers are."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from interp.errors import InputError
from interp.records.record import RunRecord
from interp.records.replay import numbers_of


@dataclasses.dataclass(frozen=True)
class RunComparison:
    settings_diff: tuple[tuple[str, str, str], ...]  # (name, first, second) where they differ
    numbers_compared: int
    max_abs_difference: float
    correlation: float | None


def compare_runs(first: RunRecord, second: RunRecord) -> RunComparison:
    if first.kind != second.kind:
        raise InputError(f"Compare runs of the same kind (got {first.kind} and {second.kind}).")
    left = {**first.settings, "model": first.model_name, "weights": first.weights_sha256[:12]}
    right = {**second.settings, "model": second.model_name, "weights": second.weights_sha256[:12]}
    diff = tuple(
        (key, json.dumps(left.get(key), default=str), json.dumps(right.get(key), default=str))
        for key in sorted(set(left) | set(right))
        if json.dumps(left.get(key), default=str) != json.dumps(right.get(key), default=str)
    )
    a, b = numbers_of(first.result), numbers_of(second.result)
    if a.shape != b.shape:
        return RunComparison(diff, 0, float("nan"), None)
    finite = np.isfinite(a) & np.isfinite(b)
    correlation = (
        float(np.corrcoef(a[finite], b[finite])[0, 1])
        if finite.sum() > 2 and np.std(a[finite]) > 0 and np.std(b[finite]) > 0
        else None
    )
    return RunComparison(
        diff, int(finite.sum()), float(np.abs(a[finite] - b[finite]).max()) if finite.any() else 0.0, correlation
    )
