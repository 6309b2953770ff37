"""A small example of the serving run kind: an A/B experiment with scripted feedback."""

from __future__ import annotations

from interp import LoadedModel
from interp.runs import RunSpec
from serve.experiments import ABExperimentRun, Arm, Experiment, ResponseOutcome
from serve.schema import SteeringItem


def examples(model: LoadedModel) -> list[RunSpec]:
    experiment = Experiment("happy-vs-none", (Arm("none"), Arm("happy", (SteeringItem(vector="happy", coefficient=3.0),))))
    responses = tuple(
        ResponseOutcome(f"r{i}", "none" if i % 2 else "happy", thumb=i % 3 == 0, score=float(i % 5), sentiment=0.1 * (i % 4))
        for i in range(24)
    )
    return [ABExperimentRun.of(experiment, responses)]
