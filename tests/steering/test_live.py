"""Live tuning: the streamed steered samples and the cached baseline give exactly SteeringEvaluation's result."""

from __future__ import annotations

import numpy as np

from interp.hooks import count_hooks
from steering.live import UnsteeredSamples, start_steered
from steering.runs import SteeringEvaluation
from tests.steering.test_vector import make

PROMPTS = ("I think the weather today is", "My favourite food")


def spec_for(model, coefficient: float = 3.0) -> SteeringEvaluation:
    vector = make(model, layers=(1,), scale=2.0)
    return SteeringEvaluation(vector, layer=1, coefficient=coefficient, prompts=PROMPTS, n_samples=2, max_new_tokens=8, seed=5)


def test_streamed_samples_and_the_baseline_equal_the_evaluation_run(tiny_model):
    spec = spec_for(tiny_model)
    expected = spec.run(tiny_model)
    baseline = UnsteeredSamples.of(spec).run(tiny_model)
    live = start_steered(tiny_model, spec)
    streamed: dict[int, str] = {}
    for row, event in live.events(timeout=60):
        streamed[row] = event.text_so_far
    result = live.evaluation(tiny_model, baseline)
    assert result.steered.texts == expected.steered.texts
    assert result.unsteered.texts == expected.unsteered.texts
    assert [streamed[i] for i in range(4)] == list(result.steered.texts)
    np.testing.assert_allclose(result.steered.behaviour, expected.steered.behaviour)
    np.testing.assert_allclose(result.steered.perplexity, expected.steered.perplexity, rtol=1e-5)
    assert result.behaviour_gain == expected.behaviour_gain
    assert count_hooks(tiny_model) == 0


def test_the_baseline_does_not_depend_on_the_steering_settings(tiny_llama):
    assert UnsteeredSamples.of(spec_for(tiny_llama, 3.0)).digest() == UnsteeredSamples.of(spec_for(tiny_llama, -2.0)).digest()


def test_a_cancelled_live_run_stops_early(tiny_llama):
    spec = SteeringEvaluation(make(tiny_llama, layers=(1,)), layer=1, coefficient=1.0, prompts=PROMPTS[:1], n_samples=1,
                              max_new_tokens=200, temperature=0.0)  # fmt: skip
    live = start_steered(tiny_llama, spec)
    next(live.events(timeout=60))
    live.cancel()
    generations = live.streams[0].result(timeout=60)
    assert all(len(g.token_ids) < 200 for g in generations)
    assert count_hooks(tiny_llama) == 0
