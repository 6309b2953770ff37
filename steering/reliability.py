"""Reliability per prompt: does a steering vector work on *each* prompt, and are its training pairs consistent?

A mean behaviour gain hides how steering varies from prompt to prompt: AxBench and steering-bench found vectors that
raise the mean while moving many inputs the wrong way. Two numbers answer "will it work on my prompts?":

* **Per-prompt effects** (:func:`per_prompt_effects`): each prompt's effect is its steered samples' mean behaviour
  minus its unsteered samples' mean (the same seeds, so they differ only by the steering). Over the prompts — the unit
  a user cares about, so samples of one prompt are not counted as independent — the mean effect comes with a
  Student-t confidence interval, ``mean ± t(0.975, n − 1) · sd / √n`` for 95 %, and the fraction of prompts moved the
  wrong way ("anti-steerable": effect < 0 when the goal is to raise the behaviour, > 0 when it is to lower it).
* **Pair consistency** (:func:`pair_consistency`): the cosine between each training pair's own difference
  (positive − negative activation, recorded as :mod:`steering.make` records it) and the vector's direction. A vector
  whose pairs all point its way (high mean cosine, small spread) steers reliably; one averaged from pairs that
  disagree steers some prompts and not others (Tan et al. 2024, "Analyzing the generalization and reliability of
  steering vectors"; Braun et al. 2025, "Understanding (un)reliability of steering vectors").

Trust the interval as a statement about prompts like these ones: it assumes the prompts are a sample from the inputs
the vector will meet, and with few prompts (n < 5) it is wide, which is the honest answer.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy import stats

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.validation import check_choice, check_finite
from steering.datasets import ContrastPairs
from steering.make import POSITIONS, text_activations
from steering.sweep import Evaluation
from steering.vector import SteeringVector

GOALS = ("raise", "lower")
NO_DIFFERENCE = 1e-5  # a pair whose activations differ by less than this fraction of their norm has no direction


@dataclasses.dataclass(frozen=True)
class PromptEffect:
    """One prompt's effect: mean steered behaviour − mean unsteered behaviour over its samples."""

    prompt: str
    unsteered: float
    steered: float
    effect: float
    wrong_way: bool  # moved against the goal (anti-steerable)


@dataclasses.dataclass(frozen=True)
class PromptEffects:
    """The effect of one steering setting per prompt, and over prompts.

    Attributes:
        effects: Each prompt's effect, in the evaluation's prompt order.
        mean_effect: The mean of the per-prompt effects (equals the evaluation's behaviour gain).
        low, high: The ``confidence`` Student-t interval of the mean effect over prompts.
        anti_steerable_fraction: The fraction of prompts moved against ``goal`` (an effect of exactly 0 is not).
        worst_first: The prompts sorted by effect, the most wrong-way first: ascending effect when raising,
            descending when lowering.
    """

    goal: str
    confidence: float
    samples_per_prompt: int
    effects: tuple[PromptEffect, ...]
    mean_effect: float
    low: float
    high: float
    anti_steerable_fraction: float
    worst_first: tuple[PromptEffect, ...]

    @property
    def n_prompts(self) -> int:
        return len(self.effects)

    @property
    def gain_interval(self) -> tuple[float, float]:
        """The interval of the gain toward ``goal``: ``(low, high)`` when raising, ``(-high, -low)`` when lowering.

        A behaviour gain is the effect signed toward the goal, so its interval must be too: printing the effect's
        interval next to a lowering gain shows a positive gain with a negative interval.
        """
        return (self.low, self.high) if self.goal == "raise" else (-self.high, -self.low)


def per_prompt_effects(evaluation: Evaluation, *, goal: str = "raise", confidence: float = 0.95) -> PromptEffects:
    """Each prompt's effect, their mean with a t-interval over prompts, and the anti-steerable fraction.

    Args:
        evaluation: Unsteered and steered samples, grouped by prompt in prompt order (as :func:`steering.sweep.evaluate`
            makes them), the same number for every prompt.
        goal: "raise" or "lower" the behaviour: which sign of effect counts as the wrong way.
        confidence: The interval's coverage, e.g. 0.95.
    """
    check_choice("goal", goal, GOALS)
    check_finite("confidence level", confidence, low=0.5, high=0.999)
    unsteered = _per_prompt_means(evaluation, "unsteered")
    steered = _per_prompt_means(evaluation, "steered")
    effect = steered - unsteered  # [prompts]
    n = len(effect)
    mean = float(effect.mean())
    # Student t over prompts: sd with n - 1 degrees of freedom, half-width t(1 - alpha/2, n - 1) * sd / sqrt(n)
    half_width = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(effect.std(ddof=1)) / math.sqrt(n)
    wrong_way = effect < 0 if goal == "raise" else effect > 0
    effects = tuple(
        PromptEffect(prompt, float(u), float(s), float(e), bool(w))
        for prompt, u, s, e, w in zip(evaluation.prompts, unsteered, steered, effect, wrong_way, strict=True)
    )
    towards_goal = (lambda item: item.effect) if goal == "raise" else (lambda item: -item.effect)
    return PromptEffects(
        goal=goal,
        confidence=float(confidence),
        samples_per_prompt=len(evaluation.steered.behaviour) // n,
        effects=effects,
        mean_effect=mean,
        low=mean - half_width,
        high=mean + half_width,
        anti_steerable_fraction=float(wrong_way.mean()),
        worst_first=tuple(sorted(effects, key=towards_goal)),
    )


def _per_prompt_means(evaluation: Evaluation, side: str) -> np.ndarray:
    """``[prompts]`` mean behaviour of one side's samples, which are grouped by prompt in prompt order."""
    n_prompts = len(evaluation.prompts)
    if n_prompts < 2:
        raise InputError(
            f"A confidence interval over prompts needs at least 2 prompts; this evaluation has {n_prompts}. Add prompts."
        )
    behaviour = np.asarray(getattr(evaluation, side).behaviour, dtype=np.float64)
    other = "steered" if side == "unsteered" else "unsteered"
    if behaviour.shape != (len(getattr(evaluation, other).behaviour),):
        raise InputError(
            f"The evaluation has {len(evaluation.unsteered.behaviour)} unsteered and {len(evaluation.steered.behaviour)} "
            "steered scores; both sides need one score per sample, the same samples."
        )
    if len(behaviour) == 0 or len(behaviour) % n_prompts:
        raise InputError(
            f"The evaluation has {len(behaviour)} {side} scores for {n_prompts} prompts; every prompt needs the same "
            "number of samples (at least 1), grouped by prompt."
        )
    if not np.isfinite(behaviour).all():
        first = int(np.flatnonzero(~np.isfinite(behaviour))[0])
        raise InputError(f"The {side} behaviour score of sample {first + 1} is not a finite number; score the texts again.")
    return behaviour.reshape(n_prompts, -1).mean(axis=1)


@dataclasses.dataclass(frozen=True)
class PairConsistency:
    """How well each training pair's difference agrees with the vector's direction at one layer.

    Attributes:
        cosines: cos(pair i's positive − negative activation, the vector's direction), in pair order.
        mean: Their mean: near 1 when every pair points the vector's way (a reliable vector).
        spread: Their standard deviation over these pairs (population, so one pair gives 0).
        minimum: The least consistent pair's cosine.
    """

    layer: int
    position: str
    cosines: tuple[float, ...]
    mean: float
    spread: float
    minimum: float


def pair_consistency(
    model: LoadedModel, pairs: ContrastPairs, vector: SteeringVector, layer: int, *, position: str = "last"
) -> PairConsistency:
    """The cosine of each pair's activation difference to ``vector``'s direction at ``layer``.

    Args:
        pairs: The training pairs (or any pairs of the same concept).
        position: Where each text's activation is read, as the vector was made: "last" token (the default of
            :func:`steering.make.mean_difference`) or "mean" over tokens.
    """
    if len(pairs) == 0:
        raise InputError("Give at least one contrast pair to check the vector against.")
    check_choice("position", position, POSITIONS)
    vector.check_for(model)
    if layer not in vector.layers:
        raise InputError(f"This vector has no direction at layer {layer}; it covers layers {list(vector.layers)}.")
    direction = vector.direction(layer).float().cpu()  # [d_model]
    if float(direction.norm()) == 0.0:
        raise InputError(f"The vector's direction at layer {layer} is zero, so it has no direction to compare pairs with.")
    # the same recording as steering.make's mean difference: text_activations at the vector's hook point
    options = {"position": position, "hook_point": vector.hook_point}
    positive = text_activations(model, pairs.positive, [layer], what="positive text of pair", **options)[:, 0]
    negative = text_activations(model, pairs.negative, [layer], what="negative text of pair", **options)[:, 0]
    differences = positive - negative  # [pairs, d_model]
    # identical texts recorded in different batches can differ by float rounding, so "no difference" is relative
    scale = torch.maximum(positive.norm(dim=-1), negative.norm(dim=-1))
    zero = torch.nonzero(differences.norm(dim=-1) <= NO_DIFFERENCE * scale).flatten().tolist()
    if zero:
        raise InputError(
            f"Pair(s) {[i + 1 for i in zero]} give the same activation for both texts at layer {layer}, so they have no "
            "direction; make the positive and negative texts differ."
        )
    cosines = torch.nn.functional.cosine_similarity(differences.double(), direction.double()[None, :], dim=-1).numpy()
    return PairConsistency(
        layer=layer,
        position=position,
        cosines=tuple(float(c) for c in cosines),
        mean=float(cosines.mean()),
        spread=float(cosines.std()),
        minimum=float(cosines.min()),
    )
