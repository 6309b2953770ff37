"""Four ways to a better reply on one scale: nothing, best-of-N, a steering vector and a DPO adapter.

The same prompts, seeds and reward model judge every method; the cost is the replies' perplexity
under the unchanged model. The steering vector's setting is itself chosen the way the comparison
judges (:func:`recommend_steering`): the best reward gain whose perplexity stays within a limit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from interp.errors import InputError
from interp.generation import generate_batch
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_count, check_finite, default_of
from steering.apply import steering_hooks as vector_hooks
from steering.rlhf.best_of_n import kl_bound
from steering.rlhf.dpo import DPORun
from steering.rlhf.inside import InsideView, inside_view
from steering.rlhf.preferences import PreferencePair, split_by_prompt
from steering.rlhf.reward_model import RewardModel
from steering.scores import perplexity
from steering.vector import SteeringVector

INSIDE_VIEW_PAIRS = 16  # held-out pairs the inside view reads


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    method: str
    mean_reward: float
    reward_gain: float
    perplexity_under_base: float
    cost: str  # what it took


def _judge(base: LoadedModel, reward: RewardModel, prompts: Sequence[str], samples_by_prompt) -> tuple[float, float]:
    """Mean reward of the replies, and their perplexity under ``base`` (geometric mean over replies)."""
    prompts_flat = [p for p, samples in zip(prompts, samples_by_prompt, strict=True) for _ in samples]
    texts = [g.text for samples in samples_by_prompt for g in samples]
    ids = [g.token_ids for samples in samples_by_prompt for g in samples]
    rewards = reward.score(base, prompts_flat, texts)
    chat_prompts = [base.tokenizer.decode(samples[0].prompt_token_ids) for samples in samples_by_prompt for _ in samples]
    ppl = perplexity(base, chat_prompts, ids)
    finite = ppl[np.isfinite(ppl)]
    return float(rewards.mean()), float(np.exp(np.log(finite).mean())) if len(finite) else math.nan


def _reply_options(max_new_tokens: int, seed: int) -> dict:
    return {"max_new_tokens": max_new_tokens, "temperature": 1.0, "seed": seed, "chat": True}


@dataclasses.dataclass(frozen=True)
class SteeringChoice:
    """The steering setting the comparison uses: the best reward gain within the fluency limit."""

    layer: int
    coefficient: float
    reward_gain: float
    perplexity_ratio: float
    within_limit: bool  # False: no cell kept perplexity within the limit; the least damaging best cell was taken
    cells: tuple[tuple[int, float, float, float], ...]  # (layer, coefficient, reward gain, perplexity ratio)


def recommend_steering(
    base: LoadedModel,
    reward: RewardModel,
    vector: SteeringVector,
    prompts: Sequence[str],
    *,
    layers: Sequence[int],
    coefficients: Sequence[float],
    n_samples: int = 1,
    max_new_tokens: int = 30,
    seed: int = 0,
    max_perplexity_ratio: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> SteeringChoice:
    """Sweep ``vector`` over layers x coefficients on the comparison's own prompts, judged by the reward model.

    The same replies, seeds and cost measure as :func:`compare`, so the setting it recommends is the
    one that comparison should use.
    """
    options = _reply_options(max_new_tokens, seed)
    base_reward, base_ppl = _judge(base, reward, prompts, generate_batch(base, list(prompts), n_samples=n_samples, **options))
    cells = []
    total = len(layers) * len(coefficients)
    for layer in layers:
        for coefficient in coefficients:
            hooks = vector_hooks(base, vector, float(coefficient), layers=[layer])
            steered = generate_batch(base, list(prompts), n_samples=n_samples, hooks=hooks, **options)
            mean_reward, ppl = _judge(base, reward, prompts, steered)
            cells.append((int(layer), float(coefficient), mean_reward - base_reward, ppl / base_ppl))
            if progress is not None:
                progress(len(cells), total)
    allowed = [c for c in cells if c[3] <= max_perplexity_ratio]
    best = max(allowed, key=lambda c: c[2]) if allowed else min(cells, key=lambda c: c[3])
    return SteeringChoice(best[0], best[1], best[2], best[3], bool(allowed), tuple(cells))


def compare(
    base: LoadedModel,
    reward: RewardModel,
    prompts: Sequence[str],
    *,
    best_of: int = 4,
    steering_hooks=None,
    steering_label: str = "steering vector",
    tuned: LoadedModel | None = None,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    seed: int = 0,
) -> list[ComparisonRow]:
    """Unsteered vs best-of-N vs steering vs DPO on the same prompts, reward and seeds."""
    options = _reply_options(max_new_tokens, seed)
    rows = []

    def judged(samples_by_prompt, label, cost):
        mean_reward, ppl = _judge(base, reward, prompts, samples_by_prompt)
        rows.append(ComparisonRow(label, mean_reward, math.nan, ppl, cost))

    plain = generate_batch(base, list(prompts), n_samples=n_samples, **options)
    judged(plain, "unsteered", "1 sample")
    many = generate_batch(base, list(prompts), n_samples=n_samples * best_of, **options)
    kept = []
    for p, samples in zip(prompts, many, strict=True):
        scores = reward.score(base, [p] * len(samples), [g.text for g in samples])
        kept.append([samples[i * best_of + int(np.argmax(scores[i * best_of : (i + 1) * best_of]))] for i in range(n_samples)])
    judged(kept, f"best-of-{best_of}", f"{best_of} samples + {best_of} reward calls; KL ≤ {kl_bound(best_of):.2f} nats")
    if steering_hooks is not None:
        judged(
            generate_batch(base, list(prompts), n_samples=n_samples, hooks=steering_hooks, **options),
            steering_label,
            "1 sample, no training",
        )
    if tuned is not None:
        judged(generate_batch(tuned, list(prompts), n_samples=n_samples, **options), "DPO adapter", "fine-tuning (LoRA)")
    baseline = rows[0].mean_reward
    return [dataclasses.replace(r, reward_gain=r.mean_reward - baseline) for r in rows]


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """The steering setting chosen, one row per method, and (with a DPO adapter) the inside view."""

    choice: SteeringChoice
    rows: tuple[ComparisonRow, ...]
    inside: InsideView | None = None


def default_steering_layers(n_layers: int) -> tuple[int, ...]:
    """Where the comparison sweeps the steering vector by default: about 15% and 30% of the way up."""
    return tuple(sorted({min(n_layers - 1, max(0, round(n_layers * f))) for f in (0.15, 0.3)}))


def chosen_minus_rejected(model: LoadedModel, pairs: Sequence[PreferencePair]) -> SteeringVector:
    """A steering vector for the preference itself: mean activation of chosen minus rejected replies, every layer."""
    from steering.datasets import ContrastPairs
    from steering.make import mean_difference

    contrast = ContrastPairs("chosen vs rejected", tuple(p.chosen for p in pairs), tuple(p.rejected for p in pairs))
    return mean_difference(model, contrast, layers=list(range(model.info.n_layers)), position="mean")


@dataclasses.dataclass(frozen=True)
class ComparisonRun(RunSpec):
    """Unsteered vs best-of-N vs the preference's steering vector (at its recommended setting) vs DPO."""

    kind: ClassVar[str] = "rlhf_comparison"
    title: ClassVar[str] = "RLHF comparison"
    tolerance: ClassVar[float] = 1e-4  # the DPO adapter is retrained on replay (see DPORun)
    mirrors = (compare,)

    reward: RewardModel
    pairs: tuple[PreferencePair, ...]  # the steering vector is made from them; the inside view reads their held-out side
    prompts: tuple[str, ...]
    steering_layers: tuple[int, ...]  # where the recommendation sweeps the vector
    coefficients: tuple[float, ...] = (1.0, 2.0, 3.0)
    best_of: int = default_of(compare, "best_of")
    n_samples: int = default_of(compare, "n_samples")
    max_new_tokens: int = default_of(compare, "max_new_tokens")
    seed: int = default_of(compare, "seed")
    sweep_samples: int = default_of(recommend_steering, "n_samples")
    max_perplexity_ratio: float = default_of(recommend_steering, "max_perplexity_ratio")
    dpo: DPORun | None = None  # the DPO run whose adapter joins the comparison, if any

    def __post_init__(self) -> None:
        check_count("number of preference pairs", len(self.pairs), low=2)
        check_count("number of prompts", len(self.prompts), high=64)
        if not all(prompt.strip() for prompt in self.prompts):
            raise InputError("Every comparison prompt needs some text.")
        check_count("number of steering layers", len(self.steering_layers), high=64)
        check_count("number of coefficients", len(self.coefficients), high=32)
        for coefficient in self.coefficients:
            check_finite("coefficient", coefficient, low=-1000.0, high=1000.0)
        check_count("best-of N", self.best_of, high=64)
        check_count("number of samples", self.n_samples, high=64)
        check_count("number of sweep samples", self.sweep_samples, high=64)
        check_count("number of new tokens", self.max_new_tokens, high=512)
        check_finite("perplexity limit", self.max_perplexity_ratio, low=1.0)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> ComparisonResult:
        report = progress or (lambda fraction, message: None)
        vector = chosen_minus_rejected(model, self.pairs)
        layers = [layer for layer in self.steering_layers if layer in vector.layers]
        if not layers:
            wanted = list(self.steering_layers)
            raise InputError(f"The steering layers {wanted} are not in this {model.info.n_layers}-layer model.")
        choice = recommend_steering(
            model, self.reward, vector, self.prompts, layers=layers, coefficients=self.coefficients,
            n_samples=self.sweep_samples, max_new_tokens=self.max_new_tokens, seed=self.seed,
            max_perplexity_ratio=self.max_perplexity_ratio,
            progress=lambda done, total: report(0.5 * done / total, f"Steering sweep: cell {done} of {total}"),
        )  # fmt: skip
        report(0.5, "Sampling and scoring unsteered, best-of-N, steering and DPO replies")
        tuned = self.dpo.tuned(model) if self.dpo is not None else None
        rows = compare(
            model, self.reward, self.prompts, best_of=self.best_of,
            steering_hooks=vector_hooks(model, vector, choice.coefficient, layers=[choice.layer]),
            steering_label=f"steering vector (layer {choice.layer}, ×{choice.coefficient:g})",
            tuned=tuned, n_samples=self.n_samples, max_new_tokens=self.max_new_tokens, seed=self.seed,
        )  # fmt: skip
        inside = None
        if tuned is not None:
            report(0.9, "The inside view: what DPO changed, layer by layer")
            _, held_out = split_by_prompt(self.pairs)  # DPO never trained on these prompts
            held_out = held_out[:INSIDE_VIEW_PAIRS]
            directions = {layer: vector.direction(layer) for layer in vector.layers}
            inside = inside_view(model, tuned, [p.prompt for p in held_out], [p.chosen for p in held_out], directions)
        report(1.0, "Done")
        return ComparisonResult(choice, tuple(rows), inside)
