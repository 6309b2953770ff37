"""How far fast mode (bf16 weights, :mod:`interp.fast`) changes what a steering sweep concludes.

Next-token agreement (:func:`interp.fast.fast_agreement`) says how often bf16 picks fp32's token; a user tuning a
vector cares about something else: does the behaviour gain at each setting, and the setting the sweep recommends,
come out the same? :func:`sweep_agreement` runs one sweep on each copy with the same prompts, seeds and scorer and
compares them cell by cell. The gains differ by more than float rounding wherever sampled text diverges, which is the
difference a user would see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from interp.loading import LoadedModel
from steering.scores import Scorer
from steering.sweep import NEUTRAL_PROMPTS, SweepResult, sweep
from steering.vector import SteeringVector


@dataclasses.dataclass(frozen=True)
class SweepAgreement:
    """The same sweep on the exact model and its fast copy: each cell's behaviour gain on both."""

    exact: SweepResult
    fast: SweepResult

    def _gains(self, result: SweepResult) -> np.ndarray:
        return np.array([cell.behaviour - result.baseline.mean_behaviour for cell in result.cells])

    @property
    def gain_differences(self) -> np.ndarray:
        """``|gain(fast) − gain(exact)|`` per cell, in the scorer's unit."""
        return np.abs(self._gains(self.fast) - self._gains(self.exact))

    @property
    def same_recommendation(self) -> bool:
        a, b = self.exact.recommended(), self.fast.recommended()
        return (a is None and b is None) or (
            a is not None and b is not None and (a.layer, a.coefficient) == (b.layer, b.coefficient)
        )

    def describe(self) -> str:
        differences = self.gain_differences
        verdict = "the same" if self.same_recommendation else "a different"
        return (
            f"on a {len(self.exact.layers)}×{len(self.exact.coefficients)} sweep the behaviour gain ({self.exact.scorer}) "
            f"differs by {differences.mean():.3f} on average (at most {differences.max():.3f}) and it recommends "
            f"{verdict} setting"
        )


def sweep_agreement(
    exact: LoadedModel,
    fast: LoadedModel,
    vector: SteeringVector,
    scorer: Scorer,
    *,
    layers: Sequence[int],
    coefficients: Sequence[float],
    prompts: Sequence[str] = NEUTRAL_PROMPTS[:2],
    n_samples: int = 2,
    max_new_tokens: int = 16,
    seed: int = 0,
) -> SweepAgreement:
    """One sweep per copy (same prompts, seeds and scorer); damage is scored by each copy itself."""
    options = {
        "layers": list(layers), "coefficients": list(coefficients), "prompts": list(prompts), "n_samples": n_samples,
        "max_new_tokens": max_new_tokens, "seed": seed,
    }  # fmt: skip
    return SweepAgreement(sweep(exact, vector, scorer, **options), sweep(fast, vector, scorer, **options))
