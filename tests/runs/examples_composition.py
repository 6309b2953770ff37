"""A small example of the composition run kind (steering/compose.py), for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.runs import RunSpec
from steering.compose import CompositionItem, SteeringComposition
from tests.steering.test_vector import make


def examples(model: LoadedModel) -> list[RunSpec]:
    joy = make(model, layers=(1,), seed=1)
    weddings = make(model, layers=(0, 1), seed=2)
    items = (
        CompositionItem(joy, (1,), 2.0, scorer="sentiment", label="joy"),
        CompositionItem(weddings, (0,), 1.5, scorer="weddings"),
    )
    return [SteeringComposition(items, prompts=("I think", "Today"), n_samples=1, max_new_tokens=4)]
