"""Fast mode on a sweep: each copy's gains are its own sweep's (checked against running sweep() on each), the
exact model against itself agrees exactly, and the bf16 copy's differences are what the sidebar reports."""

from __future__ import annotations

import numpy as np

from interp.fast import fast_copy
from steering import built_in, mean_difference
from steering.fast import sweep_agreement
from steering.scores import SENTIMENT
from steering.sweep import sweep

OPTIONS = {"layers": [1], "coefficients": [-4.0, 4.0], "prompts": ["Hello there", "The cat sat"], "n_samples": 2,
           "max_new_tokens": 6, "seed": 3}  # fmt: skip


def gains(result) -> np.ndarray:
    return np.array([cell.behaviour - result.baseline.mean_behaviour for cell in result.cells])


def test_a_model_agrees_with_itself_exactly(tiny_llama):
    vector = mean_difference(tiny_llama, built_in("sentiment"), layers=[1], position="mean")
    agreement = sweep_agreement(tiny_llama, tiny_llama, vector, SENTIMENT, **OPTIONS)
    assert np.array_equal(agreement.gain_differences, np.zeros(2)) and agreement.same_recommendation
    assert "differs by 0.000 on average" in agreement.describe()


def test_the_bf16_copys_gains_are_its_own_sweeps(tiny_llama):
    vector = mean_difference(tiny_llama, built_in("sentiment"), layers=[1], position="mean")
    fast = fast_copy(tiny_llama)
    agreement = sweep_agreement(tiny_llama, fast, vector, SENTIMENT, **OPTIONS)
    reference_exact = sweep(tiny_llama, vector, SENTIMENT, **OPTIONS)
    reference_fast = sweep(fast, vector, SENTIMENT, **OPTIONS)
    assert np.allclose(agreement.gain_differences, np.abs(gains(reference_fast) - gains(reference_exact)))
    assert agreement.exact.coefficients == (-4.0, 4.0) and len(agreement.gain_differences) == 2
