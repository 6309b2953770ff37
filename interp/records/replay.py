"""Replay: run a kept spec again and compare with the stored result.

Bitwise for deterministic analyses on the CPU, or within the kind's stated ``tolerance``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.records.record import RunRecord
from interp.serialise import to_json


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    matches: bool
    max_abs_difference: float
    tolerance: float
    compared: int  # how many numbers were compared
    new_result: Any


def numbers_of(value: Any) -> np.ndarray:
    """Every number in a result, flattened in a stable order (for bitwise comparison)."""
    document, arrays = to_json(value)
    scalars: list[float] = []

    def walk(item: Any) -> None:
        if isinstance(item, bool):
            return
        if isinstance(item, int | float):
            scalars.append(float(item))
        elif isinstance(item, dict):
            if "__array__" in item:
                return
            for key in sorted(item):
                if key not in ("seconds", "__type__") and not key.endswith("seconds"):
                    walk(item[key])
        elif isinstance(item, list):
            for x in item:
                walk(x)

    walk(document)
    parts = [np.asarray(scalars, dtype=np.float64)] + [
        arrays[k].double().numpy().ravel() for k in sorted(arrays, key=lambda k: int(k[1:]))
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def replay(model: LoadedModel, record: RunRecord) -> ReplayResult:
    """Re-execute a run from its record and compare with the stored result."""
    if record.spec is None:
        raise InputError(
            f"Run {record.run_id or ''} was kept before runs were typed (or without its settings): its settings and result "
            "can be read, but it cannot be replayed. Run it again from its page and keep the new run."
        )
    if record.weights_sha256 != model.info.weights_sha256:
        raise InputError(
            f"This run was made with {record.model_name} (weights {record.weights_sha256[:12]}...); load that model to replay it."
        )
    spec = record.spec
    new = spec.run(model)
    old_numbers, new_numbers = numbers_of(record.result), numbers_of(new)
    if old_numbers.shape != new_numbers.shape:
        return ReplayResult(False, float("inf"), spec.tolerance, 0, new)
    finite = np.isfinite(old_numbers) & np.isfinite(new_numbers)
    same_nan = np.array_equal(np.isnan(old_numbers), np.isnan(new_numbers))
    difference = float(np.abs(old_numbers[finite] - new_numbers[finite]).max()) if finite.any() else 0.0
    matches = same_nan and (difference <= spec.tolerance)
    return ReplayResult(matches, difference, spec.tolerance, int(finite.sum()), new)
