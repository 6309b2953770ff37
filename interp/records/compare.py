"""Compare two kept runs of one kind: which settings differ, and how far apart their numbers are.

Numbers are compared by name (``activation.values``, ``scores``, ``metric_clean``), not by their place
in one long list, so two runs on different prompts still compare what they share: every summary
number, every array of the same shape, and per-token arrays at the positions where both prompts
have the same token. What cannot be compared is named, with the reason, in ``not_compared``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from interp.errors import InputError
from interp.records.record import RunRecord
from interp.records.summary import named_numbers, tokens_by_part


@dataclasses.dataclass(frozen=True)
class RunComparison:
    settings_diff: tuple[tuple[str, str, str], ...]  # (name, first, second) where they differ
    numbers_compared: int
    max_abs_difference: float  # nan when nothing could be compared
    correlation: float | None
    metrics: tuple[tuple[str, float, float], ...] = ()  # (name, first, second) for each single number both runs have
    positions_matched: int | None = None  # per-token numbers: positions with the same token in both prompts
    not_compared: tuple[str, ...] = ()  # one sentence per set of numbers left out, saying why

    def describe(self) -> str:
        """One paragraph: how many numbers were compared, how far apart, and what was not and why."""
        if self.numbers_compared:
            corr = "n/a" if self.correlation is None else f"{self.correlation:.3f}"
            text = (
                f"{self.numbers_compared:,} numbers compared; largest difference {self.max_abs_difference:.3g}; "
                f"correlation {corr}."
            )
        else:
            text = "No numbers could be compared."
        if self.positions_matched is not None:
            text += (
                f" Per-token numbers compared at the {self.positions_matched} positions where both prompts have the same token."
            )
        if self.not_compared:
            text += " Not compared: " + "; ".join(self.not_compared) + "."
        return text


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
    return _compare_numbers(diff, first.result, second.result)


def _compare_numbers(diff: tuple[tuple[str, str, str], ...], first, second) -> RunComparison:
    a_numbers, b_numbers = named_numbers(first), named_numbers(second)
    a_tokens, b_tokens = tokens_by_part(first), tokens_by_part(second)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    metrics: list[tuple[str, float, float]] = []
    not_compared: list[str] = []
    matched: int | None = None
    only = sorted(set(a_numbers) ^ set(b_numbers))
    if only:
        not_compared.append(f"{_names(only)} (in one run only)")
    for name in sorted(set(a_numbers) & set(b_numbers)):
        a, b = a_numbers[name], b_numbers[name]
        part = _part_of(name, a_tokens)
        tokens_a, tokens_b = a_tokens.get(part, ()), b_tokens.get(part, ())
        if a.ndim == 0 and b.ndim == 0:
            metrics.append((name, float(a), float(b)))
            pairs.append((a.ravel(), b.ravel()))
            continue
        if tokens_a != tokens_b and (axes := _token_axes(a, b, len(tokens_a), len(tokens_b))):
            same = [i for i, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=False)) if x == y]
            matched = len(same) if matched is None else min(matched, len(same))
            if not same:
                not_compared.append(f"{name} (per token, and no position has the same token in both prompts)")
                continue
            for axis in axes:
                a, b = np.take(a, same, axis=axis), np.take(b, same, axis=axis)
        if a.shape != b.shape:
            not_compared.append(f"{name} (shapes differ: {_shape(a)} and {_shape(b)})")
            continue
        pairs.append((a.ravel(), b.ravel()))
    if not pairs:
        return RunComparison(diff, 0, float("nan"), None, tuple(metrics), matched, tuple(not_compared))
    a, b = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    finite = np.isfinite(a) & np.isfinite(b)
    correlation = (
        float(np.corrcoef(a[finite], b[finite])[0, 1])
        if finite.sum() > 2 and np.std(a[finite]) > 0 and np.std(b[finite]) > 0
        else None
    )
    largest = float(np.abs(a[finite] - b[finite]).max()) if finite.any() else float("nan")
    return RunComparison(diff, int(finite.sum()), largest, correlation, tuple(metrics), matched, tuple(not_compared))


def _part_of(name: str, tokens: dict[str, tuple[str, ...]]) -> str:
    """The longest part path holding ``name`` that has tokens ("" for the whole result)."""
    candidates = [part for part in tokens if part == "" or name.startswith(part + ".")]
    return max(candidates, key=len, default="")


def _token_axes(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> list[int]:
    """The axes that run over the prompt's tokens: those whose lengths are the two prompts' lengths."""
    if a.ndim != b.ndim or not n_a or not n_b:
        return []
    return [axis for axis in range(a.ndim) if a.shape[axis] == n_a and b.shape[axis] == n_b]


def _shape(array: np.ndarray) -> str:
    return "×".join(str(n) for n in array.shape)


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
