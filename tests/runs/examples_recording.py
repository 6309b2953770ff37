"""A small example of the steered-recording run kind (steering/record.py), for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.runs import RunSpec
from steering.record import SteeredRecordingRun
from tests.steering.test_vector import make


def examples(model: LoadedModel) -> list[RunSpec]:
    vector = make(model, layers=(1,))
    return [SteeredRecordingRun(vector, layer=1, coefficient=2.0, prompt="I love", max_new_tokens=4)]
