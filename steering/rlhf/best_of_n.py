"""Best-of-N: draw N samples, keep the one the reward model likes best.

It needs no training, only N times the compute, and moves the output distribution by at most
``log N − (N−1)/N`` nats of KL divergence from the base model (the standard analytic bound for
best-of-N; Stiennon et al. 2020, Beirami et al. 2024). The curve of kept-sample reward against N
shows what that buys.
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
from steering.rlhf.reward_model import RewardModel

MAX_N = 64


def kl_bound(n: int) -> float:
    """Upper bound on KL(best-of-N || base) in nats: ``log N - (N - 1) / N``."""
    return math.log(n) - (n - 1) / n


@dataclasses.dataclass(frozen=True)
class BestOfN:
    """Mean reward of the kept sample for each N, over prompts and seed groups."""

    ns: tuple[int, ...]
    mean_reward: np.ndarray  # [len(ns)]
    per_group: np.ndarray  # [groups, len(ns)]
    kl_bounds: np.ndarray
    prompts: tuple[str, ...]
    samples: tuple[tuple[str, ...], ...]  # per prompt (first seed group), every sample
    rewards: tuple[tuple[float, ...], ...]


def best_of_n(
    model: LoadedModel,
    reward: RewardModel,
    prompts: Sequence[str],
    *,
    ns: Sequence[int] = (1, 2, 4, 8),
    groups: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 1.0,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> BestOfN:
    """Sample ``max(ns)`` replies per prompt per seed group; for each N keep the best of the first N.

    Taking the first N of one sample list (rather than fresh samples per N) is what makes the
    curve comparable across N: the kept reward can only rise as N grows. Prompts are sampled one at a
    time (``progress`` hears of each), with the seeds one batch of them all would use.
    """
    ns = tuple(sorted(set(int(n) for n in ns)))
    if ns[0] < 1:
        raise InputError("N must be at least 1.")
    report = progress or (lambda fraction, message: None)
    top = ns[-1]
    steps = groups * len(prompts) * 2  # per seed group and prompt: sampling, then scoring
    done = 0
    curves, first_samples, first_rewards = [], (), ()
    for group in range(groups):
        grouped, rewards = [], []
        for j, prompt in enumerate(prompts):
            where = f"prompt {j + 1} of {len(prompts)}, seed group {group + 1} of {groups}"
            report(done / steps, f"Sampling {top} replies to {where}")
            # Prompt j's samples keep the seeds they would have in one batch of every prompt: seed + j * top + i.
            samples = generate_batch(
                model, [prompt], max_new_tokens=max_new_tokens, n_samples=top, temperature=temperature,
                seed=seed + 10_000 * group + j * top, chat=True,
            )[0]  # fmt: skip
            report((done + 1) / steps, f"Scoring {top} replies to {where}")
            rewards.append(reward.score(model, [prompt] * top, [g.text for g in samples]))
            grouped.append(samples)
            done += 2
        rewards = np.array(rewards)
        curves.append([float(rewards[:, :n].max(axis=1).mean()) for n in ns])
        if group == 0:
            first_samples = tuple(tuple(g.text for g in samples) for samples in grouped)
            first_rewards = tuple(tuple(float(r) for r in row) for row in rewards)
    report(1.0, f"Done: {groups * len(prompts) * top} replies sampled and scored")
    per_group = np.array(curves)
    return BestOfN(
        ns, per_group.mean(axis=0), per_group, np.array([kl_bound(n) for n in ns]), tuple(prompts), first_samples, first_rewards
    )


@dataclasses.dataclass(frozen=True)
class BestOfNRun(RunSpec):
    """Best-of-N sampling judged by a reward model: the kept reply's mean reward for each N."""

    kind: ClassVar[str] = "best_of_n"
    title: ClassVar[str] = "Best-of-N"
    mirrors = (best_of_n,)

    reward: RewardModel
    prompts: tuple[str, ...]
    ns: tuple[int, ...] = default_of(best_of_n, "ns")
    groups: int = default_of(best_of_n, "groups")  # seed groups: independent repeats of the whole curve
    max_new_tokens: int = default_of(best_of_n, "max_new_tokens")
    temperature: float = default_of(best_of_n, "temperature")
    seed: int = default_of(best_of_n, "seed")

    def __post_init__(self) -> None:
        check_count("number of prompts", len(self.prompts), high=256)
        if not all(prompt.strip() for prompt in self.prompts):
            raise InputError("Every best-of-N prompt needs some text.")
        check_count("number of N values", len(self.ns), high=16)
        for n in self.ns:
            check_count("N", n, high=MAX_N)
        check_count("number of seed groups", self.groups, high=16)
        check_count("number of new tokens", self.max_new_tokens, high=512)
        check_finite("temperature", self.temperature, low=1e-6, high=10.0)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> BestOfN:
        return best_of_n(
            model, self.reward, self.prompts, ns=self.ns, groups=self.groups, max_new_tokens=self.max_new_tokens,
            temperature=self.temperature, seed=self.seed, progress=progress,
        )  # fmt: skip
