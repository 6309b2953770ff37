"""Steering evaluations and sweeps on Ray workers (:mod:`interp.distributed`): the result ``spec.run`` gives.

An evaluation is cut into the steps the in-process run samples one after another
(:data:`~steering.runs.PROMPTS_PER_STEP` prompts, each step with its own seed offset), so each worker
samples exactly the batches the in-process run would. A sweep samples its unsteered baseline once, then
sends every layer x coefficient cell, with that baseline, to the next free worker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from interp.distributed import RAY_AUTO, ModelSource, RayWorkers, progress_line
from interp.loading import LoadedModel
from steering.runs import (
    PROMPTS_PER_STEP,
    SteeringBatchEvaluation,
    SteeringEvaluation,
    SteeringSweep,
    behaviour_scorer,
    joined_scores,
)
from steering.sweep import Evaluation, SweepCell, SweepResult, TextScores, evaluate, sample_prompts, score_texts

Progress = Callable[[float, str], None]


def _evaluation_step(model: LoadedModel, spec: SteeringEvaluation | SteeringBatchEvaluation) -> Evaluation:
    return spec.run(model)


def evaluation_on_ray(
    spec: SteeringEvaluation | SteeringBatchEvaluation,
    source: ModelSource,
    *,
    address: str = RAY_AUTO,
    workers: int | None = None,
    progress: Progress | None = None,
    on_message: Callable[[str], None] | None = None,
) -> Evaluation:
    """``spec.run(model)`` with its steps on Ray workers: the same texts, and scores up to float rounding."""
    n_samples = spec.n_samples if isinstance(spec, SteeringEvaluation) else 1
    firsts = range(0, len(spec.prompts), PROMPTS_PER_STEP)
    # Sample i of prompt j keeps seed + j * n_samples + i, as in-process: the step's seed starts at its first prompt.
    steps = [
        dataclasses.replace(spec, prompts=spec.prompts[first : first + PROMPTS_PER_STEP], seed=spec.seed + first * n_samples)
        for first in firsts
    ]
    with RayWorkers(source, address=address, workers=workers, max_workers=len(steps), on_message=on_message) as pool:
        started = time.perf_counter()
        report = _reporter(progress, started, "steps")
        parts = pool.map(_evaluation_step, steps, report)
    unsteered = joined_scores([part.unsteered for part in parts])
    steered = joined_scores([part.steered for part in parts])
    seconds = time.perf_counter() - started
    return Evaluation(spec.layer, spec.coefficient, spec.prompts, unsteered, steered, parts[0].scorer, seconds)


def _options(spec: SteeringSweep) -> dict[str, float]:
    return {
        "n_samples": spec.n_samples,
        "max_new_tokens": spec.max_new_tokens,
        "temperature": spec.temperature,
        "seed": spec.seed,
    }


def _sweep_baseline(model: LoadedModel, spec: SteeringSweep) -> tuple[TextScores, str]:
    """The unsteered samples of the prompts, scored as :func:`steering.sweep.sweep` makes them, and the scorer's name."""
    scorer = behaviour_scorer(model, spec.scorer, spec.reward_model)
    samples = sample_prompts(model, spec.prompts, None, **_options(spec))
    return score_texts(model, samples, scorer, kl_hooks=()), scorer.name


@dataclasses.dataclass(frozen=True)
class _Cell:
    spec: SteeringSweep
    layer: int
    coefficient: float
    baseline: TextScores


def _sweep_cell(model: LoadedModel, cell: _Cell) -> SweepCell:
    """One cell of :func:`steering.sweep.sweep`: the steered samples at one layer and coefficient against the baseline."""
    spec, baseline = cell.spec, cell.baseline
    scorer = behaviour_scorer(model, spec.scorer, spec.reward_model)
    options = _options(spec)
    steered = evaluate(
        model, spec.vector, cell.layer, cell.coefficient, scorer, prompts=spec.prompts, unsteered=baseline, **options
    ).steered
    return SweepCell(
        cell.layer,
        float(cell.coefficient),
        steered.mean_behaviour,
        steered.mean_perplexity,
        steered.mean_perplexity / baseline.mean_perplexity,
        steered.mean_distinct2,
        steered.texts,
        steered.mean_kl,
    )


def sweep_on_ray(
    spec: SteeringSweep,
    source: ModelSource,
    *,
    address: str = RAY_AUTO,
    workers: int | None = None,
    progress: Progress | None = None,
    on_message: Callable[[str], None] | None = None,
) -> SweepResult:
    """``spec.run(model)`` with its cells on Ray workers: the same cells in the same order, and the same recommendation."""
    coefficients = spec.coefficients
    if spec.goal == "both":  # every magnitude in both directions, as steering.sweep.sweep does
        coefficients = tuple(sorted({-abs(c) for c in coefficients} | {abs(c) for c in coefficients}))
    settings = [(layer, coefficient) for layer in spec.layers for coefficient in coefficients]
    with RayWorkers(source, address=address, workers=workers, max_workers=len(settings), on_message=on_message) as pool:
        started = time.perf_counter()
        if progress is not None:
            progress(0.0, "Sampling the unsteered baseline")
        ((baseline, scorer_name),) = pool.map(_sweep_baseline, [spec])
        chunks = [_Cell(spec, layer, coefficient, baseline) for layer, coefficient in settings]
        cells = pool.map(_sweep_cell, chunks, _reporter(progress, started, "cells"))
    return SweepResult(
        spec.layers,
        tuple(float(c) for c in coefficients),
        tuple(cells),
        baseline,
        scorer_name,
        spec.goal,
        spec.max_perplexity_ratio,
        time.perf_counter() - started,
    )


def _reporter(progress: Progress | None, started: float, what: str) -> Callable[[int, int, int, object], None] | None:
    if progress is None:
        return None
    return lambda done, total, index, result: progress(done / total, progress_line(started, done, total, what))
