"""How strong, and how damaging, is each steering setting? Evaluations and layer x coefficient sweeps.

An evaluation samples continuations of a set of prompts with fixed seeds, unsteered and steered
(the same seeds, so the two differ only by the steering), and scores both: the behaviour with an
independent scorer, the damage by perplexity under the unsteered model, by distinct-2, and by the mean
KL(unsteered ‖ steered) of the next-token distributions over the steered text (:mod:`steering.kl`). A sweep
does that for every layer x coefficient cell, finds the Pareto front (more behaviour, less
damage), and recommends the setting with the largest behaviour gain whose perplexity stays
within a limit (2x the unsteered text's by default) and whose repetition does not collapse.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from interp.errors import InputError
from interp.generation import Generation, generate_batch
from interp.hooks import HookSpec
from interp.loading import LoadedModel
from interp.validation import MAX_TEXTS
from steering.apply import steering_hooks
from steering.kl import mean_kl_batched
from steering.scores import Scorer, distinct_n, perplexity
from steering.vector import SteeringVector

MAX_PERPLEXITY_RATIO = 2.0  # the sweep's default limit on damage: perplexity within 2x the unsteered text's
# Beyond this many times the limit the steered text is gibberish, and a lexicon or reward scores noise: VADER gave
# steered word salad +0.92. The score is then marked unreliable rather than shown as a success.
UNRELIABLE_FACTOR = 2.0


def behaviour_is_reliable(perplexity_ratio: float, limit: float = MAX_PERPLEXITY_RATIO) -> bool:
    """Whether a behaviour score can be read as behaviour: the text's perplexity (× unsteered) is within
    :data:`UNRELIABLE_FACTOR` times the damage ``limit``. Unknown damage (NaN) is not held against it."""
    return not perplexity_ratio > UNRELIABLE_FACTOR * limit


NEUTRAL_PROMPTS = (
    "I think the weather today is",
    "My neighbour told me that",
    "The report on the new building says",
    "Yesterday at the station I",
    "The meeting this afternoon was",
    "When I opened the letter, I",
    "The city council announced that",
    "Our new project is",
)


@dataclasses.dataclass(frozen=True)
class TextScores:
    """Samples and their scores for one setting.

    ``kl`` is each sample's mean KL(unsteered ‖ steered) over its generated positions, in nats (NaN for an empty
    sample; 0 for unsteered samples); None where it was not measured (records kept before it existed).
    """

    texts: tuple[str, ...]
    behaviour: np.ndarray
    perplexity: np.ndarray
    distinct2: np.ndarray
    token_counts: np.ndarray | None = None
    kl: np.ndarray | None = None

    @property
    def mean_behaviour(self) -> float:
        return float(np.mean(self.behaviour))

    @property
    def mean_perplexity(self) -> float:
        """Corpus perplexity: exp of the mean per-token loss over all the texts' tokens."""
        finite = np.isfinite(self.perplexity)
        if not finite.any():
            return math.nan
        weights = np.ones(len(self.perplexity)) if self.token_counts is None else self.token_counts.astype(np.float64)
        return float(np.exp(np.sum(weights[finite] * np.log(self.perplexity[finite])) / np.sum(weights[finite])))

    @property
    def mean_distinct2(self) -> float:
        return float(np.mean(self.distinct2))

    @property
    def mean_kl(self) -> float:
        """Mean KL(unsteered ‖ steered) over the samples with tokens (each sample counts once), in nats; NaN if not
        measured."""
        if self.kl is None:
            return math.nan
        finite = self.kl[np.isfinite(self.kl)]
        return float(np.mean(finite)) if finite.size else math.nan


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Unsteered and steered samples of the same prompts with the same seeds."""

    layer: int
    coefficient: float
    prompts: tuple[str, ...]
    unsteered: TextScores
    steered: TextScores
    scorer: str
    seconds: float

    @property
    def behaviour_gain(self) -> float:
        return self.steered.mean_behaviour - self.unsteered.mean_behaviour

    @property
    def perplexity_ratio(self) -> float:
        return self.steered.mean_perplexity / self.unsteered.mean_perplexity

    @property
    def kl(self) -> float:
        """Mean KL(unsteered ‖ steered) of the steered samples' next-token distributions, in nats (NaN: not measured)."""
        return self.steered.mean_kl

    @property
    def behaviour_is_reliable(self) -> bool:
        """False when the steered text is so damaged (see :func:`behaviour_is_reliable`) that its score means little."""
        return behaviour_is_reliable(self.perplexity_ratio)

    def to_frame(self):
        """One row per sample: its prompt, the unsteered and steered texts, and their scores."""
        import pandas as pd

        per_prompt = len(self.steered.texts) // len(self.prompts)  # samples are grouped by prompt
        return pd.DataFrame(
            {
                "prompt": [prompt for prompt in self.prompts for _ in range(per_prompt)],
                "unsteered": self.unsteered.texts,
                "steered": self.steered.texts,
                "behaviour_unsteered": self.unsteered.behaviour,
                "behaviour_steered": self.steered.behaviour,
                "perplexity_unsteered": self.unsteered.perplexity,
                "perplexity_steered": self.steered.perplexity,
                "kl_steered": np.full(len(self.steered.texts), np.nan) if self.steered.kl is None else self.steered.kl,
            }
        )


def sample_prompts(model, prompts, hooks, *, n_samples, max_new_tokens, temperature, seed) -> list[Generation]:
    grouped = generate_batch(
        model, list(prompts), max_new_tokens=max_new_tokens, n_samples=n_samples, temperature=temperature, seed=seed, hooks=hooks
    )
    return [g for group in grouped for g in group]


def score_texts(
    model: LoadedModel, samples: Sequence[Generation], scorer: Scorer, *, kl_hooks: HookSpec | None = None
) -> TextScores:
    """Behaviour, perplexity, distinct-2 and (given the hooks that made the samples) KL of each sample.

    Args:
        kl_hooks: The steering hooks the samples were generated with, to measure KL(unsteered ‖ steered) over each
            sample's generated positions (two batched teacher-forced passes per sample, :func:`mean_kl_batched`).
            ``()`` for unsteered samples: KL 0 at no cost. None leaves KL unmeasured (NaN).
    """
    texts = [g.text for g in samples]
    kl = None
    if kl_hooks is not None:
        kl = np.full(len(samples), np.nan)
        for first in range(0, len(samples), MAX_TEXTS):  # mean_kl_batched takes at most MAX_TEXTS at once
            part = samples[first : first + MAX_TEXTS]
            if any(g.token_ids for g in part):  # all empty: NaN, as mean_kl_batched would refuse them
                damage = mean_kl_batched(model, [g.prompt_token_ids for g in part], [g.token_ids for g in part], kl_hooks)
                kl[first : first + len(part)] = damage.per_sample
    return TextScores(
        texts=tuple(texts),
        behaviour=scorer.score(texts),
        perplexity=perplexity(model, [g.prompt for g in samples], [g.token_ids for g in samples]),
        distinct2=distinct_n(texts, 2),
        token_counts=np.array([len(g.token_ids) for g in samples]),
        kl=kl,
    )


def evaluate(
    model: LoadedModel,
    vector: SteeringVector,
    layer: int,
    coefficient: float,
    scorer: Scorer,
    *,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    seed: int = 0,
    positions: str = "all",
    unsteered: TextScores | None = None,
) -> Evaluation:
    """Steered vs unsteered samples of ``prompts`` (same seeds) with behaviour and damage scores (perplexity,
    distinct-2, and KL in nats: :attr:`Evaluation.kl`)."""
    start = time.perf_counter()
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    if unsteered is None:
        unsteered = score_texts(model, sample_prompts(model, prompts, None, **options), scorer, kl_hooks=())
    hooks = steering_hooks(model, vector, coefficient, layers=[layer], positions=positions)
    steered = score_texts(model, sample_prompts(model, prompts, hooks, **options), scorer, kl_hooks=hooks)
    return Evaluation(layer, float(coefficient), tuple(prompts), unsteered, steered, scorer.name, time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class SweepCell:
    """One layer x coefficient setting's steered samples, summarised (``kl``: mean KL(unsteered ‖ steered) in nats;
    NaN in records kept before it was measured)."""

    layer: int
    coefficient: float
    behaviour: float
    perplexity: float
    perplexity_ratio: float
    distinct2: float
    texts: tuple[str, ...]
    kl: float = math.nan


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Behaviour and damage for every layer x coefficient, with the unsteered baseline."""

    layers: tuple[int, ...]
    coefficients: tuple[float, ...]
    cells: tuple[SweepCell, ...]
    baseline: TextScores
    scorer: str
    goal: str  # "raise" or "lower" the behaviour, or "both": a magnitude that works with either sign
    max_perplexity_ratio: float
    seconds: float

    def grid(self, field: str) -> np.ndarray:
        """``[layer, coefficient]`` array of one cell field (behaviour, perplexity_ratio, distinct2, kl, ...)."""
        values = np.full((len(self.layers), len(self.coefficients)), np.nan)
        for cell in self.cells:
            values[self.layers.index(cell.layer), self.coefficients.index(cell.coefficient)] = getattr(cell, field)
        return values

    def _gain(self, cell: SweepCell) -> float:
        """Progress towards the goal; for "both", positive coefficients should raise, negative lower."""
        gain = cell.behaviour - self.baseline.mean_behaviour
        if self.goal == "lower" or (self.goal == "both" and cell.coefficient < 0):
            return -gain
        return gain

    def pareto_front(self) -> list[SweepCell]:
        """Cells no other cell beats on both gain and perplexity ratio."""
        front = []
        for cell in self.cells:
            dominated = any(
                self._gain(other) >= self._gain(cell)
                and other.perplexity_ratio <= cell.perplexity_ratio
                and (self._gain(other) > self._gain(cell) or other.perplexity_ratio < cell.perplexity_ratio)
                for other in self.cells
            )
            if not dominated:
                front.append(cell)
        return sorted(front, key=lambda c: c.perplexity_ratio)

    def behaviour_is_reliable(self, cell: SweepCell) -> bool:
        """Whether the cell's behaviour score can be read as behaviour (its text is not damaged far past the limit)."""
        return behaviour_is_reliable(cell.perplexity_ratio, self.max_perplexity_ratio)

    def _acceptable(self, cell: SweepCell) -> bool:
        return cell.perplexity_ratio <= self.max_perplexity_ratio and cell.distinct2 >= 0.8 * self.baseline.mean_distinct2

    def recommended(self) -> SweepCell | None:
        """The largest gain among cells within the perplexity limit whose repetition has not collapsed.

        For goal "both": the positive-coefficient cell whose mirror (same layer, negated
        coefficient) is acceptable too, maximising the smaller of the two gains — one setting that
        steers either way.
        """
        if self.goal != "both":
            allowed = [c for c in self.cells if self._acceptable(c) and self._gain(c) > 0]
            return max(allowed, key=self._gain, default=None)
        by_setting = {(c.layer, c.coefficient): c for c in self.cells}
        best, best_score = None, 0.0
        for cell in self.cells:
            mirror = by_setting.get((cell.layer, -cell.coefficient))
            if cell.coefficient <= 0 or mirror is None or not (self._acceptable(cell) and self._acceptable(mirror)):
                continue
            score = min(self._gain(cell), self._gain(mirror))
            if score > best_score:
                best, best_score = cell, score
        return best

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "layer": c.layer,
                    "coefficient": c.coefficient,
                    "behaviour": c.behaviour,
                    "behaviour_gain": c.behaviour - self.baseline.mean_behaviour,
                    "perplexity": c.perplexity,
                    "perplexity_ratio": c.perplexity_ratio,
                    "distinct2": c.distinct2,
                    "kl": c.kl,
                }
                for c in self.cells
            ]
        )


def sweep(
    model: LoadedModel,
    vector: SteeringVector,
    scorer: Scorer,
    *,
    layers: Sequence[int],
    coefficients: Sequence[float],
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    seed: int = 0,
    goal: str = "raise",
    max_perplexity_ratio: float = MAX_PERPLEXITY_RATIO,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Evaluate every layer x coefficient cell with the same prompts and seeds."""
    if goal not in ("raise", "lower", "both"):
        raise InputError("goal must be 'raise', 'lower' or 'both'.")
    if goal == "both":  # every magnitude in both directions
        coefficients = sorted({-abs(float(c)) for c in coefficients} | {abs(float(c)) for c in coefficients})
    missing = [layer for layer in layers if layer not in vector.layers]
    if missing:
        raise InputError(f"The vector has no direction at layer(s) {missing}; make it at those layers first.")
    start = time.perf_counter()
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    baseline = score_texts(model, sample_prompts(model, prompts, None, **options), scorer, kl_hooks=())
    cells = []
    total = len(layers) * len(coefficients)
    for layer in layers:
        for coefficient in coefficients:
            result = evaluate(model, vector, layer, coefficient, scorer, prompts=prompts, unsteered=baseline, **options)
            steered = result.steered
            cells.append(
                SweepCell(
                    layer,
                    float(coefficient),
                    steered.mean_behaviour,
                    steered.mean_perplexity,
                    steered.mean_perplexity / baseline.mean_perplexity,
                    steered.mean_distinct2,
                    steered.texts,
                    steered.mean_kl,
                )
            )
            if progress is not None:
                progress(len(cells), total)
    return SweepResult(
        tuple(layers),
        tuple(float(c) for c in coefficients),
        tuple(cells),
        baseline,
        scorer.name,
        goal,
        max_perplexity_ratio,
        time.perf_counter() - start,
    )
