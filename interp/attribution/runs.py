"""Attribution runs as values: one method on one prompt, or several methods side by side.

Each run checks its result's faithfulness too, so a kept run holds the attribution and the numbers
that say whether to trust it; a replay recomputes both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from interp.attribution.checks import Faithfulness, faithfulness
from interp.attribution.explain import Attribution, attribute
from interp.attribution.methods import AttributionMethod, method_of
from interp.attribution.targets import Target
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_count, default_of


@dataclasses.dataclass(frozen=True)
class CheckedAttribution:
    """One attribution and its faithfulness check."""

    attribution: Attribution
    faithfulness: Faithfulness


@dataclasses.dataclass(frozen=True)
class AttributionComparison:
    """Several methods' attributions of the same target on the same prompt, in the order asked for."""

    runs: tuple[CheckedAttribution, ...]

    @property
    def attributions(self) -> list[Attribution]:
        return [run.attribution for run in self.runs]

    @property
    def curves(self) -> list[Faithfulness]:
        return [run.faithfulness for run in self.runs]


def check_keepable_target(target: Target | None) -> None:
    """A spec's target must be data: a Python function (a scalar target) cannot be stored or replayed."""
    if target is not None and target.function is not None:
        raise InputError(
            f"The target {target.describe()!r} is a Python function, which a run cannot keep or replay; "
            "call interp.attribution.attribute() with it directly."
        )


def _check_common(target: Target | None, budget: int, seed: int) -> None:
    check_keepable_target(target)
    check_count("budget (model evaluations per run)", budget)
    check_count("seed", seed, low=0)


@dataclasses.dataclass(frozen=True)
class AttributionRun(RunSpec):
    """One method's attribution of ``target`` on ``prompt``, with its faithfulness check.

    ``method`` is a method object (``ShapleySampling(n_samples=4)``); a method's name is accepted and
    becomes the method with its default options.
    """

    kind: ClassVar[str] = "attribution"
    title: ClassVar[str] = "Attribution"
    mirrors = (attribute,)

    prompt: str | tuple[int, ...]
    method: AttributionMethod = default_of(attribute, "method")
    target: Target | None = default_of(attribute, "target")
    budget: int = default_of(attribute, "budget")
    seed: int = default_of(attribute, "seed")

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", method_of(self.method))
        _check_common(self.target, self.budget, self.seed)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> CheckedAttribution:
        if progress is not None:
            progress(0.0, self.method.title)
        result = attribute(model, self.prompt, self.target, self.method, budget=self.budget, seed=self.seed)
        if progress is not None:
            progress(0.9, f"{self.method.title}: faithfulness check")
        checked = CheckedAttribution(result, faithfulness(model, result))
        if progress is not None:
            progress(1.0, "Done")
        return checked


@dataclasses.dataclass(frozen=True)
class MethodComparison(RunSpec):
    """Several methods on the same prompt and target, each with its faithfulness check."""

    kind: ClassVar[str] = "attribution_comparison"
    title: ClassVar[str] = "Attribution methods compared"
    mirrors = (attribute,)

    prompt: str | tuple[int, ...]
    methods: tuple[AttributionMethod, ...]
    target: Target | None = default_of(attribute, "target")
    budget: int = default_of(attribute, "budget")
    seed: int = default_of(attribute, "seed")

    def __post_init__(self) -> None:
        if isinstance(self.methods, str | AttributionMethod) or not isinstance(self.methods, Sequence):
            raise InputError("Give the methods to compare as a list, e.g. ('shap', 'feature_ablation').")
        if not self.methods:
            raise InputError("Choose at least one attribution method.")
        object.__setattr__(self, "methods", tuple(method_of(m) for m in self.methods))
        _check_common(self.target, self.budget, self.seed)

    def runs(self) -> tuple[AttributionRun, ...]:
        """One single-method run per method (a page caches each, so adding a method computes only that one)."""
        return tuple(AttributionRun(self.prompt, m, self.target, self.budget, self.seed) for m in self.methods)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> AttributionComparison:
        runs = self.runs()
        results = []
        for i, one in enumerate(runs):
            if progress is not None:
                progress(i / len(runs), f"{one.method.title} ({i + 1} of {len(runs)})")
            results.append(one.run(model))
        if progress is not None:
            progress(1.0, "Done")
        return AttributionComparison(tuple(results))
