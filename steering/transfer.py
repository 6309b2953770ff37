"""Steering transfer: does a vector made on the full model still steer a compressed copy of it?

The vector is made on the original (mean difference of a built-in contrast set, as the Steering page makes it), then
applied at the same layer and coefficient to the original and to the variant (:mod:`interp.compression`), with the same
prompts and seeds: the behaviour gain and the damage (perplexity ratio, each model judging its own text) on both. And
the vector is re-made on the variant from the same pairs: the cosine between the two says whether the direction itself
moved, or only how the model responds to it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from interp.compression import Variant, make_variant
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, default_of
from steering.datasets import built_in
from steering.make import mean_difference
from steering.scores import SCORERS
from steering.sweep import Evaluation, evaluate


@dataclasses.dataclass(frozen=True)
class SteeringTransfer:
    variant: str  # the variant's description
    layer: int
    coefficient: float
    on_original: Evaluation
    on_variant: Evaluation  # the original's vector, applied to the variant
    remade_cosine: float  # cosine of the original's direction and one re-made on the variant, at ``layer``

    @property
    def gain_kept(self) -> float:
        """The variant's behaviour gain as a share of the original's (1 = the vector works as well)."""
        gain = self.on_original.behaviour_gain
        return self.on_variant.behaviour_gain / gain if gain else float("nan")


def steering_transfer(
    original: LoadedModel,
    variant: LoadedModel,
    *,
    dataset: str = "sentiment",
    layer: int = 4,
    coefficient: float = 4.0,
    n_samples: int = 2,
    max_new_tokens: int = 24,
    seed: int = 0,
) -> SteeringTransfer:
    """The original's vector on both models (same prompts, seeds, scorer), and the direction re-made on the variant."""
    if dataset not in SCORERS:
        raise InputError(f"Steering transfer needs a built-in set with its own scorer: {', '.join(SCORERS)}.")
    pairs, scorer = built_in(dataset), SCORERS[dataset]
    vector = mean_difference(original, pairs, layers=[layer], position="mean")
    if float(vector.directions.norm()) < 1e-6:
        raise InputError(
            f"The built-in '{dataset}' pairs give no direction on {original.info.name}: its tokenizer reads their "
            "words the same way (a toy vocabulary?). Try a model with a natural-language tokenizer."
        )
    remade = mean_difference(variant, pairs, layers=[layer], position="mean")
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "seed": seed}
    results = [evaluate(model, vector, layer, coefficient, scorer, **options) for model in (original, variant)]
    a, b = vector.directions[0].double(), remade.directions[0].double()
    cosine = float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12))
    return SteeringTransfer(variant.info.name, layer, float(coefficient), results[0], results[1], cosine)


@dataclasses.dataclass(frozen=True)
class SteeringTransferRun(RunSpec):
    """Make a vector on the loaded model, then see how it steers a compressed copy (and whether it moved there)."""

    kind: ClassVar[str] = "steering_transfer"
    title: ClassVar[str] = "Steering transfer"
    tolerance: ClassVar[float] = 1e-4
    mirrors = (steering_transfer,)

    variant: Variant
    dataset: str = default_of(steering_transfer, "dataset")
    layer: int = default_of(steering_transfer, "layer")
    coefficient: float = default_of(steering_transfer, "coefficient")
    n_samples: int = default_of(steering_transfer, "n_samples")
    max_new_tokens: int = default_of(steering_transfer, "max_new_tokens")
    seed: int = default_of(steering_transfer, "seed")

    def run(self, model: LoadedModel, progress: Progress | None = None) -> SteeringTransfer:
        if not 0 <= self.layer < model.info.n_layers:
            raise InputError(f"{model.info.name} has layers 0-{model.info.n_layers - 1}; choose one of them.")
        if progress is not None:
            progress(0.0, f"Making the copy: {self.variant.describe()}")
        variant = make_variant(model, self.variant)
        if progress is not None:
            progress(0.2, "Steering both models with the same prompts and seeds")
        return steering_transfer(model, variant, dataset=self.dataset, layer=self.layer, coefficient=self.coefficient,
                                 n_samples=self.n_samples, max_new_tokens=self.max_new_tokens, seed=self.seed)  # fmt: skip
