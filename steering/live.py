"""Live tuning: the unsteered baseline once, the steered samples streamed from the engine.

A slider move changes only the steering settings (layer, coefficient), so the unsteered samples of the same
prompts, sample count, seeds, length and scorer are a run of their own (:class:`UnsteeredSamples`), computed
once and looked up afterwards, and each move streams only the steered samples: :func:`start_steered` submits one
engine request per prompt with the vector as a per-request addition; tokens arrive as they are decoded, beside
every other session's rows. :meth:`LiveSteering.evaluation` waits, scores and returns the same
:class:`~steering.sweep.Evaluation` that :class:`~steering.runs.SteeringEvaluation` computes (same seeds: sample
``i`` of prompt ``j`` is seeded ``seed + j * n_samples + i``; tested equal).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from interp.engine import GenerationRequest, GenerationStream, TokenEvent, engine_for
from interp.generation import SamplingSettings, generate_batch
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, default_of
from interp.tokens import check_length, tokenize
from steering.apply import steering_additions, steering_hooks
from steering.runs import ScorerName, SteeringEvaluation, behaviour_scorer
from steering.sweep import Evaluation, TextScores, evaluate, score_texts

if TYPE_CHECKING:
    from steering.rlhf import RewardModel


@dataclasses.dataclass(frozen=True)
class UnsteeredSamples(RunSpec):
    """The unsteered samples of some prompts, scored: the baseline every steering setting is compared with."""

    kind: ClassVar[str] = "unsteered_samples"
    title: ClassVar[str] = "Unsteered samples"
    mirrors = (evaluate,)

    prompts: tuple[str, ...] = default_of(evaluate, "prompts")
    n_samples: int = default_of(evaluate, "n_samples")
    max_new_tokens: int = default_of(evaluate, "max_new_tokens")
    temperature: float = default_of(evaluate, "temperature")
    seed: int = default_of(evaluate, "seed")
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None

    def __post_init__(self) -> None:
        # the same checks as the evaluation it is the baseline of (a placeholder vector is not needed for them)
        from steering.runs import check_prompts, check_sampling, check_scorer, normalise_fields

        check_scorer(self.scorer, self.reward_model)
        check_sampling(self.max_new_tokens, self.temperature)
        normalise_fields(self, prompts=check_prompts(self.prompts))

    @classmethod
    def of(cls, spec: SteeringEvaluation) -> UnsteeredSamples:
        return cls(spec.prompts, spec.n_samples, spec.max_new_tokens, spec.temperature, spec.seed, spec.scorer, spec.reward_model)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> TextScores:
        if progress is not None:
            progress(0.0, f"Unsteered samples of {len(self.prompts)} prompt(s)")
        grouped = generate_batch(
            model, list(self.prompts), max_new_tokens=self.max_new_tokens, n_samples=self.n_samples,
            temperature=self.temperature, seed=self.seed,
        )  # fmt: skip
        scores = score_texts(
            model, [g for group in grouped for g in group], behaviour_scorer(model, self.scorer, self.reward_model),
            kl_hooks=(),
        )  # fmt: skip
        if progress is not None:
            progress(1.0, "Unsteered samples done")
        return scores


@dataclasses.dataclass
class LiveSteering:
    """The steered samples of one evaluation, decoding on the engine: stream them, cancel them, or score them."""

    spec: SteeringEvaluation
    streams: tuple[GenerationStream, ...]  # one per prompt, its samples in seed order
    started: float

    def events(self, timeout: float | None = None) -> Iterator[tuple[int, TokenEvent]]:
        """``(row, event)`` as tokens arrive; ``row`` counts samples over prompts (prompt j, sample i: j * n + i)."""
        for j, stream in enumerate(self.streams):
            for event in stream.events(timeout):
                yield j * self.spec.n_samples + event.sample, event

    def cancel(self) -> None:
        for stream in self.streams:
            stream.cancel()

    def evaluation(self, model: LoadedModel, unsteered: TextScores, timeout: float | None = None) -> Evaluation:
        """Wait for every sample and score them beside ``unsteered`` (the :class:`UnsteeredSamples` of this spec)."""
        samples = [g for stream in self.streams for g in stream.result(timeout)]
        scorer = behaviour_scorer(model, self.spec.scorer, self.spec.reward_model)
        spec = self.spec  # the engine added these as per-request additions; as hooks they measure the same KL
        hooks = steering_hooks(model, spec.vector, spec.coefficient, layers=[spec.layer], positions=spec.positions)
        steered = score_texts(model, samples, scorer, kl_hooks=hooks)
        seconds = time.perf_counter() - self.started
        return Evaluation(self.spec.layer, self.spec.coefficient, self.spec.prompts, unsteered, steered, scorer.name, seconds)


def start_steered(model: LoadedModel, spec: SteeringEvaluation, *, label: str = "Steering samples") -> LiveSteering:
    """Submit ``spec``'s steered samples to the engine and return at once; tokens stream on the result."""
    additions = steering_additions(model, spec.vector, spec.coefficient, layers=[spec.layer], positions=spec.positions)
    engine = engine_for(model)
    requests = []
    for j, prompt in enumerate(spec.prompts):
        ids = tokenize(model, prompt)
        check_length(model, len(ids) + spec.max_new_tokens, what="A prompt plus the tokens to generate")
        requests.append(
            GenerationRequest(
                prompt, tuple(ids), max_new_tokens=spec.max_new_tokens, n_samples=spec.n_samples,
                sampling=SamplingSettings(spec.temperature), seed=spec.seed + j * spec.n_samples, additions=additions,
                label=label,
            )
        )  # fmt: skip
    return LiveSteering(spec, tuple(engine.submit(r) for r in requests), time.perf_counter())
