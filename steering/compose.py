"""Composition: several steering vectors at once, and whether their effects add up.

Steering for two behaviours (say, positive *and* about weddings) adds two vectors to the residual stream. Whether
that works is an empirical question: the vectors may interfere (one's addition moves the other's behaviour, or the
sum pushes the text off the model's manifold so both behaviours fade). This module measures it with the same
prompts and seeds in every condition, so conditions differ only by the steering:

* **unsteered** — no vector;
* **alone: i** — vector ``i`` alone, at its layers and coefficient;
* **together** — every vector at once: at each hook point the sum of the items' additions there (one addition of
  the summed vector, so a vector and its negation cancel exactly).

Each behaviour has its own scorer (independent of the model, :mod:`steering.scores`), and every condition is scored
by every scorer, giving a behaviour × condition table. Per behaviour ``b`` (the behaviour of item ``b``):

    interaction(b)         = score_b(together) − score_b(alone: b)          what adding the others did to it
    additive prediction(b) = score_b(unsteered) + Σ_i [score_b(alone: i) − score_b(unsteered)]

The additive prediction is what ``together`` would score if every vector's effect on ``b`` simply added; the gap
between it and the actual ``together`` score is the non-additive part. Damage per condition is the corpus
perplexity under the unsteered model (× unsteered) and the mean KL(unsteered ‖ steered) in nats (:mod:`steering.kl`).

Trust the table as far as the samples go: the scores are means over ``len(prompts) × n_samples`` samples of sampled
text, and a difference smaller than the spread between samples is noise.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from interp.errors import InputError
from interp.generation import Generation
from interp.hooks import HookSpec
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_choice, check_count, default_of
from interp.validation import check_finite

# addition_hook is the position-aware addition steering_hooks uses; the summed vector must act exactly as one addition does
from steering.apply import POSITION_MODES, addition_hook, steering_additions, steering_hooks
from steering.runs import (
    MAX_SAMPLES,
    SCORER_NAMES,
    Positions,
    ScorerName,
    behaviour_scorer,
    check_prompts,
    check_sampling,
    check_scorer,
)
from steering.scores import Scorer
from steering.sweep import NEUTRAL_PROMPTS, TextScores, sample_prompts, score_texts
from steering.vector import SteeringVector

if TYPE_CHECKING:
    from steering.rlhf import RewardModel

UNSTEERED = "unsteered"
TOGETHER = "together"
MAX_ITEMS = 8  # vectors in one composition: 8 + 2 conditions of samples


@dataclasses.dataclass(frozen=True)
class ConditionScores:
    """One condition's samples scored by every behaviour's scorer.

    Attributes:
        condition: ``"unsteered"``, ``"alone: <label>"`` or ``"together"``.
        texts: The samples, grouped by prompt (prompt ``j``, sample ``i`` at ``j * n_samples + i``).
        behaviour: ``[behaviours, samples]``: row ``b`` is behaviour ``b``'s scorer on every sample.
        perplexity: ``[samples]`` under the unsteered model.
        distinct2: ``[samples]`` share of distinct word bigrams.
        kl: ``[samples]`` mean KL(unsteered ‖ steered) over each sample's generated positions, nats (0 unsteered).
        token_counts: ``[samples]`` generated tokens.
    """

    condition: str
    texts: tuple[str, ...]
    behaviour: np.ndarray
    perplexity: np.ndarray
    distinct2: np.ndarray
    kl: np.ndarray
    token_counts: np.ndarray

    def _scores(self) -> TextScores:
        return TextScores(self.texts, self.behaviour[0], self.perplexity, self.distinct2, self.token_counts, self.kl)

    @property
    def mean_behaviour(self) -> np.ndarray:
        """``[behaviours]`` each scorer's mean over the samples."""
        return self.behaviour.mean(axis=1)

    @property
    def mean_perplexity(self) -> float:
        """Corpus perplexity (exp of the mean per-token loss over every sample's tokens)."""
        return self._scores().mean_perplexity

    @property
    def mean_kl(self) -> float:
        return self._scores().mean_kl

    @property
    def mean_distinct2(self) -> float:
        return float(np.mean(self.distinct2))


@dataclasses.dataclass(frozen=True)
class Composition:
    """Every behaviour scored under every condition (unsteered, each vector alone, all together), with damage.

    Attributes:
        behaviours: One label per item (its behaviour), in item order.
        scorers: The scorer's name per behaviour.
        prompts: The prompts every condition sampled (the same seeds in every condition).
        conditions: ``unsteered``, ``alone: <label>`` per item, ``together`` — in that order.
    """

    behaviours: tuple[str, ...]
    scorers: tuple[str, ...]
    prompts: tuple[str, ...]
    conditions: tuple[ConditionScores, ...]
    seconds: float

    @property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(c.condition for c in self.conditions)

    def table(self) -> np.ndarray:
        """``[behaviour, condition]`` mean behaviour scores (each in its scorer's unit)."""
        return np.stack([c.mean_behaviour for c in self.conditions], axis=1)

    @property
    def baseline(self) -> np.ndarray:
        """``[behaviour]`` unsteered scores."""
        return self.table()[:, 0]

    @property
    def alone(self) -> np.ndarray:
        """``[behaviour]`` each behaviour's score under its own vector alone."""
        n = len(self.behaviours)
        return self.table()[np.arange(n), 1 + np.arange(n)]

    @property
    def together(self) -> np.ndarray:
        """``[behaviour]`` scores with every vector at once."""
        return self.table()[:, -1]

    @property
    def interaction(self) -> np.ndarray:
        """``[behaviour]`` together − alone on its own vector: what the other vectors did to each behaviour."""
        return self.together - self.alone

    @property
    def additive_prediction(self) -> np.ndarray:
        """``[behaviour]`` baseline + the sum of every vector's gain alone: ``together`` if the effects added."""
        table = self.table()
        gains = table[:, 1:-1] - table[:, :1]  # [behaviour, item]
        return table[:, 0] + gains.sum(axis=1)

    @property
    def perplexity_ratio(self) -> np.ndarray:
        """``[condition]`` corpus perplexity ÷ the unsteered samples'."""
        values = np.array([c.mean_perplexity for c in self.conditions])
        return values / values[0]

    @property
    def kl(self) -> np.ndarray:
        """``[condition]`` mean KL(unsteered ‖ steered) in nats (0 for unsteered)."""
        return np.array([c.mean_kl for c in self.conditions])

    def to_frame(self):
        """One row per behaviour: its score under every condition, the additive prediction and the interaction."""
        import pandas as pd

        table = self.table()
        rows = []
        for b, behaviour in enumerate(self.behaviours):
            row = {"behaviour": behaviour, "scorer": self.scorers[b]}
            row.update({name: float(table[b, k]) for k, name in enumerate(self.condition_names)})
            row["additive_prediction"] = float(self.additive_prediction[b])
            row["interaction"] = float(self.interaction[b])
            rows.append(row)
        return pd.DataFrame(rows)

    def damage_frame(self):
        """One row per condition: corpus perplexity, its ratio to unsteered, mean KL (nats), distinct-2."""
        import pandas as pd

        return pd.DataFrame(
            {
                "condition": self.condition_names,
                "perplexity": [c.mean_perplexity for c in self.conditions],
                "perplexity_ratio": self.perplexity_ratio,
                "kl": self.kl,
                "distinct2": [c.mean_distinct2 for c in self.conditions],
            }
        )


def summed_hooks(
    model: LoadedModel,
    vectors: Sequence[SteeringVector],
    layers: Sequence[Sequence[int]],
    coefficients: Sequence[float],
    *,
    positions: str = "all",
) -> list[tuple[str, object]]:
    """One hook per hook point adding the sum of every item's ``coefficient × direction`` there (the summed vector)."""
    totals: dict[str, torch.Tensor] = {}
    for vector, chosen, coefficient in zip(vectors, layers, coefficients, strict=True):
        for addition in steering_additions(model, vector, coefficient, layers=list(chosen), positions=positions):
            total = totals.get(addition.hook_name)
            totals[addition.hook_name] = addition.delta if total is None else total + addition.delta
    return [(name, addition_hook(delta.to(model.device), positions)) for name, delta in totals.items()]


def compose(
    model: LoadedModel,
    vectors: Sequence[SteeringVector],
    layers: Sequence[Sequence[int]],
    coefficients: Sequence[float],
    scorers: Sequence[Scorer],
    *,
    labels: Sequence[str] | None = None,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    seed: int = 0,
    positions: str = "all",
    progress: Progress | None = None,
) -> Composition:
    """Sample ``prompts`` unsteered, with each vector alone, and with all of them, and score every behaviour.

    Args:
        vectors, layers, coefficients, scorers: One entry per item: the vector, the layers it steers, its
            coefficient, and the scorer of the behaviour it is meant to move.
        labels: A name per behaviour (default: the scorer's name, numbered if two items share it).
        seed: Sample ``i`` of prompt ``j`` is seeded ``seed + j * n_samples + i`` in every condition.

    Raises:
        InputError: no items, lists of different lengths, more than :data:`MAX_ITEMS`, a layer the vector lacks,
            a coefficient that is not a finite number, an unknown positions mode.

    Example:
        >>> result = compose(model, [positive, weddings], [[4], [6]], [4.0, 6.0], [SENTIMENT, WEDDINGS])
        >>> result.to_frame()[["behaviour", "unsteered", "together", "interaction"]]
    """
    n = len(vectors)
    if n == 0:
        raise InputError("Give at least one vector to compose.")
    if n > MAX_ITEMS:
        raise InputError(f"At most {MAX_ITEMS} vectors in one composition (got {n}).")
    if not len(layers) == len(coefficients) == len(scorers) == n or (labels is not None and len(labels) != n):
        raise InputError("Give one list of layers, one coefficient, one scorer (and one label) per vector.")
    if positions not in POSITION_MODES:
        raise InputError(f"Unknown positions {positions!r}; choose from {', '.join(POSITION_MODES)}.")
    names = _labels(scorers, labels)
    start = time.perf_counter()
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    alone = [
        _hooks_of(model, vector, chosen, coefficient, positions)
        for vector, chosen, coefficient in zip(vectors, layers, coefficients, strict=True)
    ]  # made (and checked) before anything samples
    together = summed_hooks(model, vectors, layers, coefficients, positions=positions)
    settings = [(UNSTEERED, None), *((f"alone: {name}", hooks) for name, hooks in zip(names, alone, strict=True))]
    settings.append((TOGETHER, together))
    conditions = []
    for k, (condition, hooks) in enumerate(settings):
        if progress is not None:
            progress(k / len(settings), f"Sampling {condition} ({k + 1} of {len(settings)})")
        samples = sample_prompts(model, prompts, hooks, **options)
        conditions.append(_scored(model, condition, samples, scorers, hooks))
    if progress is not None:
        progress(1.0, "Composition done")
    return Composition(
        tuple(names), tuple(s.name for s in scorers), tuple(prompts), tuple(conditions), time.perf_counter() - start
    )


def _labels(scorers: Sequence[Scorer], labels: Sequence[str] | None) -> list[str]:
    """Each item's label, or its scorer's name (numbered where two unlabelled items share a scorer)."""
    names = [scorer.name for scorer in scorers]
    given = [str(label) if label else "" for label in labels] if labels is not None else [""] * len(names)
    return [given[i] or (f"{name} ({i + 1})" if names.count(name) > 1 else name) for i, name in enumerate(names)]


def _hooks_of(model: LoadedModel, vector: SteeringVector, layers: Sequence[int], coefficient: float, positions: str):
    missing = [layer for layer in layers if layer not in vector.layers]
    if not layers or missing:
        raise InputError(f"A vector has no direction at layer(s) {missing or list(layers)}; it covers {list(vector.layers)}.")
    return steering_hooks(model, vector, coefficient, layers=list(layers), positions=positions)


def _scored(
    model: LoadedModel, condition: str, samples: Sequence[Generation], scorers: Sequence[Scorer], hooks: HookSpec | None
) -> ConditionScores:
    first = score_texts(model, samples, scorers[0], kl_hooks=() if hooks is None else hooks)
    behaviour = np.stack([first.behaviour, *(scorer.score(list(first.texts)) for scorer in scorers[1:])])
    return ConditionScores(condition, first.texts, behaviour, first.perplexity, first.distinct2, first.kl, first.token_counts)


@dataclasses.dataclass(frozen=True)
class CompositionItem:
    """One vector of a composition: where it steers, how hard, and the behaviour (scorer) it should move."""

    vector: SteeringVector
    layers: tuple[int, ...]
    coefficient: float
    scorer: ScorerName = "sentiment"
    label: str = ""  # the behaviour's name in tables (default: the scorer's)

    def __post_init__(self) -> None:
        layers = tuple(int(layer) for layer in self.layers)
        if not layers:
            raise InputError("Choose at least one layer for each vector of the composition.")
        missing = [layer for layer in layers if layer not in self.vector.layers]
        if missing:
            raise InputError(f"A vector has no direction at layer(s) {missing}; make it at those layers first.")
        check_finite("coefficient", self.coefficient)
        check_choice("scorer", self.scorer, SCORER_NAMES)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "coefficient", float(self.coefficient))


@dataclasses.dataclass(frozen=True)
class SteeringComposition(RunSpec):
    """Several vectors at once: each behaviour scored unsteered, under each vector alone and under all together."""

    kind: ClassVar[str] = "steering_composition"
    title: ClassVar[str] = "Steering composition"
    mirrors = (compose,)

    items: tuple[CompositionItem, ...]
    reward_model: RewardModel | None = None  # needed when an item's scorer is "reward"
    prompts: tuple[str, ...] = default_of(compose, "prompts")
    n_samples: int = default_of(compose, "n_samples")
    max_new_tokens: int = default_of(compose, "max_new_tokens")
    temperature: float = default_of(compose, "temperature")
    seed: int = default_of(compose, "seed")
    positions: Positions = default_of(compose, "positions")

    def __post_init__(self) -> None:
        if not self.items:
            raise InputError("Add at least one vector to the composition.")
        if len(self.items) > MAX_ITEMS:
            raise InputError(f"At most {MAX_ITEMS} vectors in one composition (got {len(self.items)}).")
        for item in self.items:
            check_scorer(item.scorer, self.reward_model)
        check_count("number of samples", self.n_samples, high=MAX_SAMPLES)
        check_sampling(self.max_new_tokens, self.temperature)
        check_choice("positions", self.positions, POSITION_MODES)
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "prompts", check_prompts(self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> Composition:
        return compose(
            model,
            [item.vector for item in self.items],
            [item.layers for item in self.items],
            [item.coefficient for item in self.items],
            [behaviour_scorer(model, item.scorer, self.reward_model) for item in self.items],
            labels=[item.label for item in self.items],
            prompts=self.prompts,
            n_samples=self.n_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed,
            positions=self.positions,
            progress=progress,
        )
