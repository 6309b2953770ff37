"""Small examples of the Steering page's mode run kinds (steering/toolkit_runs.py), for the tiny fixtures."""

from __future__ import annotations

import torch

from interp import LoadedModel
from interp.runs import RunSpec
from steering.datasets import ContrastPairs
from steering.toolkit_runs import (
    AngularSteering,
    ConditionalSteering,
    DirectionAblation,
    OrthogonalisedExport,
    PairConsistencyCheck,
)
from tests.steering.test_vector import make

PAIRS = ContrastPairs("tiny", ("I love it", "What a joy"), ("I hate it", "What a pain"))


def examples(model: LoadedModel) -> list[RunSpec]:
    vector = make(model, layers=(1,))
    direction = torch.linspace(-1.0, 1.0, model.info.d_model)
    return [
        PairConsistencyCheck(PAIRS, vector, layer=1),
        ConditionalSteering(
            vector,
            layer=1,
            coefficient=2.0,
            condition_layer=0,
            on_prompts=("Bake bread", "Boil rice"),
            off_prompts=("Fix a bike", "Read a map"),
            prompts=("Cook soup", "Paint a door"),
            max_new_tokens=4,
        ),
        DirectionAblation("refusal", "Pick a lock", 1, harmful=("Steal a car",), harmless=("Wash a car",), max_new_tokens=4),
        OrthogonalisedExport(direction, prompt="Hello there"),
        AngularSteering(vector, layer=1, angle_degrees=30.0, prompts=("I love",), n_samples=1, max_new_tokens=4),
    ]
