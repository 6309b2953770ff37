"""The steering run kinds as values: an evaluation of one setting, a layer x coefficient sweep, and an
evaluation over a file of prompts.

Each spec holds everything its run needs — the vector, the prompts, the seed and, when the behaviour
is scored by a trained reward model, that reward model — so a kept run replays without the page, the
uploaded file or the session it came from. Scorers are named, never stored as functions: the run
resolves the name (:func:`behaviour_scorer`) when it runs.

Example:
    >>> spec = SteeringEvaluation(vector.at_layers([4]), layer=4, coefficient=3.0, scorer="sentiment")
    >>> evaluation = spec.run(model)
    >>> evaluation.behaviour_gain
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import numpy as np

from interp.errors import InputError
from interp.generation import generate_batch
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_choice, check_count, check_finite, default_of
from interp.validation import check_texts
from steering.apply import POSITION_MODES
from steering.scores import SCORERS, Scorer
from steering.sweep import Evaluation, SweepResult, TextScores, evaluate, score_texts, sweep
from steering.vector import SteeringVector

if TYPE_CHECKING:
    from steering.rlhf import RewardModel

ScorerName = Literal["sentiment", "weddings", "reward"]  # the built-in scorers (steering.scores.SCORERS) and "reward"
SCORER_NAMES: tuple[str, ...] = get_args(ScorerName)
Goal = Literal["raise", "lower", "both"]
Positions = Literal["all", "prompt", "generated"]
MAX_NEW_TOKENS = 512
MAX_SAMPLES = 64
MAX_PROMPTS = 500  # as many as one prompt file holds (interp.prompt_files.MAX_ROWS)
PROMPTS_PER_STEP = 8  # prompts sampled in one batch between two progress reports (the sweep's default prompt set)


_NO_REWARD_MODEL = (
    "This run is scored by a reward model that was not kept with it, so it cannot run or be replayed: "
    "give the reward model as well (reward_model=...)."
)


def behaviour_scorer(model: LoadedModel, name: str, reward_model: RewardModel | None = None) -> Scorer:
    """The scorer called ``name``: a built-in one, or ``"reward"`` for ``reward_model`` scoring on ``model``."""
    if name == "reward":
        if reward_model is None:
            raise InputError(_NO_REWARD_MODEL)
        from steering.rlhf import reward_scorer

        return reward_scorer(model, reward_model)
    check_choice("scorer", name, SCORER_NAMES)
    return SCORERS[name]


def normalise_fields(spec: RunSpec, **values) -> None:
    """Store settings in one canonical form (tuples, floats) so equal settings give equal digests."""
    for name, value in values.items():
        object.__setattr__(spec, name, value)


def check_scorer(scorer: str, reward_model: RewardModel | None) -> None:
    check_choice("scorer", scorer, SCORER_NAMES)
    if scorer == "reward" and reward_model is None:
        raise InputError(_NO_REWARD_MODEL)


def check_prompts(prompts: Sequence[str]) -> tuple[str, ...]:
    return check_texts("prompts", prompts, max_items=MAX_PROMPTS)


def check_vector_layers(vector: SteeringVector, layers: Sequence[int]) -> None:
    missing = [layer for layer in layers if layer not in vector.layers]
    if missing:
        raise InputError(f"The vector has no direction at layer(s) {missing}; make it at those layers first.")


def check_sampling(max_new_tokens: int, temperature: float) -> None:
    check_count("number of new tokens", max_new_tokens, high=MAX_NEW_TOKENS)
    check_finite("temperature", temperature, low=0.0)


def joined_scores(parts: Sequence[TextScores]) -> TextScores:
    if len(parts) == 1:
        return parts[0]
    counts = [p.token_counts for p in parts]
    kls = [p.kl for p in parts]
    return TextScores(
        texts=tuple(text for p in parts for text in p.texts),
        behaviour=np.concatenate([p.behaviour for p in parts]),
        perplexity=np.concatenate([p.perplexity for p in parts]),
        distinct2=np.concatenate([p.distinct2 for p in parts]),
        token_counts=None if any(c is None for c in counts) else np.concatenate(counts),
        kl=None if any(k is None for k in kls) else np.concatenate(kls),
    )


def evaluate_in_steps(
    model: LoadedModel,
    vector: SteeringVector,
    layer: int,
    coefficient: float,
    scorer: Scorer,
    *,
    prompts: Sequence[str],
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    positions: str = "all",
    progress: Progress | None = None,
) -> Evaluation:
    """:func:`steering.sweep.evaluate`, :data:`PROMPTS_PER_STEP` prompts at a time, saying how far it is.

    Every step reports twice, after its unsteered and after its steered samples. Sample ``i`` of prompt
    ``j`` keeps seed ``seed + j * n_samples + i`` (as in one batch), so up to :data:`PROMPTS_PER_STEP`
    prompts give exactly :func:`evaluate`'s result, and more differ from one big batch only by float
    rounding under padding.
    """
    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature}
    plain, steered = [], []
    steps = range(0, len(prompts), PROMPTS_PER_STEP)
    for k, first in enumerate(steps):
        chunk = tuple(prompts[first : first + PROMPTS_PER_STEP])
        last = first + len(chunk)
        which = f"prompt {first + 1}" if len(chunk) == 1 else f"prompts {first + 1}–{last}"
        where = f"{which} of {len(prompts)}: {len(chunk) * n_samples} sample{'s' if len(chunk) * n_samples > 1 else ''}"
        report(k / len(steps), f"Unsteered, {where}")
        seed_here = seed + first * n_samples
        grouped = generate_batch(model, list(chunk), seed=seed_here, hooks=None, **options)
        unsteered = score_texts(model, [g for group in grouped for g in group], scorer, kl_hooks=())
        report((k + 0.5) / len(steps), f"Steered, {where}")
        part = evaluate(
            model, vector, layer, coefficient, scorer, prompts=chunk, seed=seed_here, positions=positions,
            unsteered=unsteered, **options,
        )  # fmt: skip
        plain.append(part.unsteered)
        steered.append(part.steered)
    report(1.0, f"Done: {len(prompts)} prompt{'s' if len(prompts) > 1 else ''}")
    seconds = time.perf_counter() - start
    return Evaluation(
        layer, float(coefficient), tuple(prompts), joined_scores(plain), joined_scores(steered), scorer.name, seconds
    )


def batch_summary(evaluation: Evaluation, unit: str) -> str:
    """The line a page shows after a batch: how many prompts, how long, and the mean effect and damage.

    Example:
        >>> batch_summary(batch, "VADER compound")
        '40 prompts in 12.3 s: mean behaviour gain +0.214 VADER compound, mean perplexity ratio ×1.35 (steered ÷ unsteered), \
mean KL 0.082 nats.'
    """
    n = len(evaluation.prompts)
    kl = "" if math.isnan(evaluation.kl) else f", mean KL {evaluation.kl:.3f} nats"  # NaN: not measured (old records)
    return (
        f"{n} prompt{'s' if n != 1 else ''} in {evaluation.seconds:.1f} s: mean behaviour gain "
        f"{evaluation.behaviour_gain:+.3f} {unit}, mean perplexity ratio ×{evaluation.perplexity_ratio:.2f} "
        f"(steered ÷ unsteered){kl}."
    )


@dataclasses.dataclass(frozen=True)
class SteeringEvaluation(RunSpec):
    """Unsteered and steered samples of some prompts (the same seeds) at one layer and coefficient, scored."""

    kind: ClassVar[str] = "steering_evaluation"
    title: ClassVar[str] = "Steering evaluation"
    mirrors = (evaluate,)

    vector: SteeringVector  # at least the chosen layer (pages keep just that one)
    layer: int
    coefficient: float
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None  # needed when scorer == "reward"
    prompts: tuple[str, ...] = default_of(evaluate, "prompts")
    n_samples: int = default_of(evaluate, "n_samples")
    max_new_tokens: int = default_of(evaluate, "max_new_tokens")
    temperature: float = default_of(evaluate, "temperature")
    seed: int = default_of(evaluate, "seed")
    positions: Positions = default_of(evaluate, "positions")

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, [self.layer])
        check_finite("coefficient", self.coefficient)
        check_scorer(self.scorer, self.reward_model)
        check_count("number of samples", self.n_samples, high=MAX_SAMPLES)
        check_sampling(self.max_new_tokens, self.temperature)
        check_choice("positions", self.positions, POSITION_MODES)
        normalise_fields(self, coefficient=float(self.coefficient), prompts=check_prompts(self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> Evaluation:
        return evaluate_in_steps(
            model,
            self.vector,
            self.layer,
            self.coefficient,
            behaviour_scorer(model, self.scorer, self.reward_model),
            prompts=self.prompts,
            n_samples=self.n_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            positions=self.positions,
            progress=progress,
        )


@dataclasses.dataclass(frozen=True)
class SteeringBatchEvaluation(RunSpec):
    """One steered and one unsteered sample of every prompt of a file, scored: a table of texts and scores.

    The prompts are held here (not the file), so the run replays without the upload.
    """

    kind: ClassVar[str] = "steering_batch_evaluation"
    title: ClassVar[str] = "Steering on a file of prompts"
    mirrors = (evaluate,)

    vector: SteeringVector
    layer: int
    coefficient: float
    prompts: tuple[str, ...]
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None
    max_new_tokens: int = default_of(evaluate, "max_new_tokens")
    temperature: float = default_of(evaluate, "temperature")
    seed: int = default_of(evaluate, "seed")

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, [self.layer])
        check_finite("coefficient", self.coefficient)
        check_scorer(self.scorer, self.reward_model)
        check_sampling(self.max_new_tokens, self.temperature)
        normalise_fields(self, coefficient=float(self.coefficient), prompts=check_prompts(self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> Evaluation:
        return evaluate_in_steps(
            model,
            self.vector,
            self.layer,
            self.coefficient,
            behaviour_scorer(model, self.scorer, self.reward_model),
            prompts=self.prompts,
            n_samples=1,  # one row per prompt: the table pairs each prompt with its two texts
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            progress=progress,
        )


@dataclasses.dataclass(frozen=True)
class SteeringSweep(RunSpec):
    """Every layer x coefficient cell evaluated with the same prompts and seeds, with a recommended setting."""

    kind: ClassVar[str] = "steering_sweep"
    title: ClassVar[str] = "Steering sweep"
    mirrors = (sweep,)

    vector: SteeringVector  # at least the swept layers
    layers: tuple[int, ...]
    coefficients: tuple[float, ...]
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None
    prompts: tuple[str, ...] = default_of(sweep, "prompts")
    n_samples: int = default_of(sweep, "n_samples")
    max_new_tokens: int = default_of(sweep, "max_new_tokens")
    temperature: float = default_of(sweep, "temperature")
    seed: int = default_of(sweep, "seed")
    goal: Goal = default_of(sweep, "goal")
    max_perplexity_ratio: float = default_of(sweep, "max_perplexity_ratio")

    def __post_init__(self) -> None:
        if not self.layers:
            raise InputError("Choose at least one layer to sweep.")
        check_vector_layers(self.vector, self.layers)
        if not self.coefficients:
            raise InputError("Give at least one coefficient, like 1, 2, 3.")
        for coefficient in self.coefficients:
            check_finite("coefficient", coefficient)
        check_scorer(self.scorer, self.reward_model)
        check_count("number of samples", self.n_samples, high=MAX_SAMPLES)
        check_sampling(self.max_new_tokens, self.temperature)
        check_choice("goal", self.goal, get_args(Goal))
        check_finite("perplexity limit", self.max_perplexity_ratio, low=1.0)
        normalise_fields(
            self,
            layers=tuple(int(layer) for layer in self.layers),
            coefficients=tuple(float(c) for c in self.coefficients),
            prompts=check_prompts(self.prompts),
            max_perplexity_ratio=float(self.max_perplexity_ratio),
        )

    def run(self, model: LoadedModel, progress: Progress | None = None) -> SweepResult:
        if progress is not None:
            progress(0.0, "Sampling the unsteered baseline")
        return sweep(
            model,
            self.vector,
            behaviour_scorer(model, self.scorer, self.reward_model),
            layers=self.layers,
            coefficients=self.coefficients,
            prompts=self.prompts,
            n_samples=self.n_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            goal=self.goal,
            max_perplexity_ratio=self.max_perplexity_ratio,
            progress=None if progress is None else lambda done, total: progress(done / total, f"Cell {done} of {total}"),
        )
