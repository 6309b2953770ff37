"""Small examples of the steering run kinds, for the tiny fixtures: a random vector, 4 new tokens, 1 sample."""

from __future__ import annotations

from interp import LoadedModel
from interp.runs import RunSpec
from steering.live import UnsteeredSamples
from steering.runs import SteeringBatchEvaluation, SteeringEvaluation, SteeringSweep
from steering.search import SteeringSearch
from tests.steering.test_vector import make

PROMPTS = ("I love", "The store")


def examples(model: LoadedModel) -> list[RunSpec]:
    vector = make(model, layers=(1,))
    return [
        SteeringEvaluation(vector, layer=1, coefficient=2.0, prompts=PROMPTS, n_samples=1, max_new_tokens=4, seed=3),
        SteeringSweep(vector, layers=(1,), coefficients=(1.0,), prompts=PROMPTS[:1], n_samples=1, max_new_tokens=4),
        SteeringBatchEvaluation(vector, layer=1, coefficient=2.0, prompts=PROMPTS, scorer="weddings", max_new_tokens=4),
        UnsteeredSamples(prompts=PROMPTS, n_samples=1, max_new_tokens=4, seed=3),
        SteeringSearch(
            vector,
            prompts=("I love", "The store", "Today", "My dog"),
            n_trials=2,
            modes=("add",),
            n_samples=1,
            max_new_tokens=4,
            max_perplexity_ratio=1e6,
        ),
    ]
