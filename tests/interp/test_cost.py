"""Seconds before a run starts: estimates scale with the evaluations and warn when a run takes minutes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp.attribution import COMPARED_BY_DEFAULT, METHODS, IntegratedGradients, Target, attribute
from interp.attribution.evaluation import Evaluator
from interp.attribution.tables import attribution_cost, cost_frame
from interp.attribution.targets import resolve_target
from interp.cost import LONG_RUN_SECONDS, estimate_seconds, seconds_per_evaluation
from interp.tokens import tokenize

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_an_estimate_scales_with_the_evaluations_and_says_seconds():
    one, two = estimate_seconds(100, 0.125), estimate_seconds(200, 0.125)
    assert two.seconds == pytest.approx(2 * one.seconds)
    assert estimate_seconds(320, 0.125).describe() == "about 40 s (320 forward passes at 0.12 s)"
    assert not one.long


def test_a_slow_measured_throughput_turns_the_estimate_into_a_minutes_warning(tiny_llama, monkeypatch):
    import interp.cost

    monkeypatch.setattr(interp.cost.time, "perf_counter", iter([0.0, 8 * 0.5]).__next__)  # 8 timed rows took 4 s
    per_row = seconds_per_evaluation(tiny_llama, tokenize(tiny_llama, PROMPT))
    assert per_row == pytest.approx(0.5)
    n = len(tokenize(tiny_llama, PROMPT))
    estimate = attribution_cost([METHODS["feature_ablation"]()], n, per_row, prompts=20)
    expected = 20 * ((n + 2) + 2 * (n + 1)) * 0.5  # the method and its faithfulness check, for each prompt
    assert estimate.seconds == pytest.approx(expected) and estimate.long and expected > LONG_RUN_SECONDS
    assert estimate.warning() == f"This will take about {expected / 60:.0f} min; fewer steps or prompts shorten it."


def test_gradient_methods_are_estimated_dearer_per_evaluation_and_the_table_has_seconds():
    ig = IntegratedGradients(n_steps=64)
    alone = attribution_cost([ig], 10, 0.01)
    assert alone.seconds == pytest.approx(70 * 0.03 + 22 * 0.01)
    frame = cost_frame([ig], 10, budget=5000, seconds_per_evaluation=0.01)
    assert frame["time (estimate, s)"].iloc[0] == pytest.approx(round(alone.seconds, 1))


def test_measured_throughput_is_a_positive_number_of_seconds(tiny_llama):
    per_row = seconds_per_evaluation(tiny_llama, tokenize(tiny_llama, PROMPT))
    assert 0 < per_row < 10 and math.isfinite(per_row)


def test_integrated_gradients_is_not_compared_by_default_and_says_when_its_scores_do_not_add_up(tiny_llama):
    assert "integrated_gradients" not in COMPARED_BY_DEFAULT
    result = attribute(tiny_llama, PROMPT, Target.next_token(), "integrated_gradients")  # the page's defaults
    # The tiny Llama's baseline token has a zero embedding: the path starts at RMSNorm's singularity.
    assert result.relative_convergence_delta > 0.1
    warning = result.convergence_warning()
    assert "convergence delta" in warning and "n_steps" not in warning and "now 64" in warning
    assert attribute(tiny_llama, PROMPT, Target.next_token(), "shap").convergence_warning() is None


def test_the_default_methods_with_a_completeness_axiom_satisfy_it(tiny_llama):
    """SHAP: base value + scores = f(x); Shapley sampling: scores = f(x) - f(all tokens removed), to 1e-4."""
    shap = attribute(tiny_llama, PROMPT, Target.next_token(), "shap")
    assert shap.base_value + shap.scores.sum() == pytest.approx(shap.target_value, abs=1e-4)
    assert "shapley_sampling" in COMPARED_BY_DEFAULT
    sampled = attribute(tiny_llama, PROMPT, Target.next_token(), "shapley_sampling")
    resolved = resolve_target(tiny_llama, PROMPT, Target.next_token())
    evaluator = Evaluator(tiny_llama, resolved, 8)
    removed = float(evaluator.rows([[evaluator.pad_id] * len(resolved.prompt_ids)])[0])
    assert float(np.sum(sampled.scores)) == pytest.approx(sampled.target_value - removed, abs=1e-4)
