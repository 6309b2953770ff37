"""Ablation: does the behaviour need these components? And do they suffice?

**Ablation** replaces a component's output with zero, its mean over a reference batch, or its value on a
corrupted prompt (resample), alone or as a *set*, and reports the metric. Zero ablation takes the model
off its usual activations, so it overstates importance; mean ablation over a batch of similar prompts
is the usual choice (for a task of one pair the batch is its clean and corrupted prompts together —
:func:`interp.circuits.tasks.reference_batch` — since a prompt's own mean would change nothing).

**Faithfulness** keeps only a candidate circuit's heads (ablating every other head): the circuit is
faithful when the metric stays near the full model's and far from the model with no heads at all.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch

from interp.circuits.metric import Metric
from interp.circuits.replacement import check_pair, record_sites, run_metric, sweep_rows
from interp.circuits.tasks import CircuitTask, reference_batch
from interp.components import Component, all_heads, head_label, layer_label
from interp.errors import InputError
from interp.hooks import HookSite
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_choice, default_of

ABLATIONS = ("zero", "mean", "resample")
AblationMethod = Literal["zero", "mean", "resample"]


@dataclasses.dataclass(frozen=True)
class AblationResult:
    """The metric with a set of components ablated together, and without."""

    components: tuple[str, ...]  # component labels
    method: str
    metric_label: str
    metric_full: float
    metric_ablated: float

    @property
    def change(self) -> float:
        return self.metric_ablated - self.metric_full


@dataclasses.dataclass(frozen=True)
class AblationSweep:
    """Each head ablated alone: ``changes[layer, head]`` is the metric's change (ablated minus full)."""

    method: str
    changes: np.ndarray  # [layer, head]
    metric_label: str
    metric_full: float
    seconds: float
    forward_rows: int

    @property
    def values(self) -> np.ndarray:
        return self.changes

    @property
    def row_labels(self) -> tuple[str, ...]:
        return tuple(layer_label(layer) for layer in range(self.changes.shape[0]))

    @property
    def column_labels(self) -> tuple[str, ...]:
        return tuple(f"H{head}" for head in range(self.changes.shape[1]))

    def ranked(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` heads whose ablation moves the metric most, as ``(label, change)``."""
        flat = np.argsort(-np.abs(self.changes), axis=None)[:k]
        heads = self.changes.shape[1]
        return [(head_label(*divmod(int(i), heads)), float(self.changes.flat[i])) for i in flat]


@dataclasses.dataclass(frozen=True)
class CircuitFaithfulness:
    """The metric of the full model, of only the circuit's heads kept, and of no heads at all."""

    circuit: tuple[str, ...]  # head labels
    method: str
    metric_label: str
    full: float
    circuit_only: float
    no_heads: float

    @property
    def preserved(self) -> float | None:
        """How much of the full model's metric the circuit keeps (1 = all of it), or None when the two ends tie."""
        span = self.full - self.no_heads
        return None if abs(span) <= 1e-9 else (self.circuit_only - self.no_heads) / span


def ablation_values(
    model: LoadedModel,
    tokens: torch.Tensor,
    components: Sequence[Component],
    method: str,
    *,
    reference: torch.Tensor | None = None,
    corrupted: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """What each ablated hook point is overwritten with: ``{hook_name: [batch, pos, ...]}``."""
    if method not in ABLATIONS:
        raise InputError(f"Unknown ablation {method!r}; choose from {', '.join(ABLATIONS)}.")
    names = sorted({c.hook_name for c in components})
    if method == "resample":
        if corrupted is None:
            raise InputError("Resample ablation needs a corrupted prompt to take the activations from.")
        check_pair(tokens, corrupted)
        return record_sites(model, corrupted, names)
    shapes = record_sites(model, tokens[:1], names)
    if method == "zero":
        return {name: torch.zeros_like(value).expand(tokens.shape[0], *value.shape[1:]) for name, value in shapes.items()}
    if reference is None:
        raise InputError("Mean ablation needs a reference batch to average over.")
    recorded = record_sites(model, reference, names)
    values = {}
    for name, value in recorded.items():
        # Position-wise mean when the reference lines up with the prompt, else one mean vector.
        mean = value.mean(dim=0, keepdim=True) if value.shape[1] == tokens.shape[1] else value.mean(dim=(0, 1), keepdim=True)
        values[name] = mean.expand(tokens.shape[0], tokens.shape[1], *value.shape[2:])
    return values


def ablate(
    model: LoadedModel,
    tokens: torch.Tensor,
    components: Sequence[Component],
    metric: Metric,
    *,
    method: str = "mean",
    reference: torch.Tensor | None = None,
    corrupted: torch.Tensor | None = None,
) -> AblationResult:
    """Ablate a *set* of components together and report the metric before and after."""
    if not components:
        raise InputError("Choose at least one component to ablate.")
    values = ablation_values(model, tokens, components, method, reference=reference, corrupted=corrupted)
    by_hook: dict[str, list[Component]] = defaultdict(list)
    for component in components:
        by_hook[component.hook_name].append(component)

    def make(chosen: list[Component], value: torch.Tensor) -> Callable:
        def replace(activation: torch.Tensor, hook: HookSite) -> torch.Tensor:
            activation = activation.clone()
            for component in chosen:
                index = component.select(activation)
                activation[index] = value[index].to(activation.dtype)
            return activation

        return replace

    hooks = [(name, make(chosen, values[name])) for name, chosen in by_hook.items()]
    full = run_metric(model, tokens, metric)
    ablated = run_metric(model, tokens, metric, hooks)
    return AblationResult(tuple(c.label for c in components), method, metric.label, full, ablated)


def ablation_sweep(
    model: LoadedModel,
    tokens: torch.Tensor,
    metric: Metric,
    *,
    method: str = "mean",
    reference: torch.Tensor | None = None,
    corrupted: torch.Tensor | None = None,
    batch_size: int = 64,
) -> AblationSweep:
    """Ablate each head alone (batched) and report the metric's change, ablated minus full."""
    start = time.perf_counter()
    heads = all_heads(model)
    values = ablation_values(model, tokens, heads, method, reference=reference, corrupted=corrupted)
    full = run_metric(model, tokens, metric)
    change = sweep_rows(model, tokens, heads, values, metric, batch_size=batch_size).numpy() - full
    return AblationSweep(
        method=method,
        changes=change.reshape(model.info.n_layers, model.info.n_heads),
        metric_label=metric.label,
        metric_full=full,
        seconds=time.perf_counter() - start,
        forward_rows=len(heads) * tokens.shape[0] + tokens.shape[0],
    )


def circuit_faithfulness(
    model: LoadedModel, tokens: torch.Tensor, circuit: Sequence[Component], metric: Metric, *, method: str = "mean",
    reference: torch.Tensor | None = None, corrupted: torch.Tensor | None = None,
) -> CircuitFaithfulness:  # fmt: skip
    """Keep only ``circuit``'s heads (ablate every other head) and compare with the full model and with no heads.

    The circuit is faithful when "circuit only" is close to "full" and far from "no heads".
    """
    heads = all_heads(model)
    keep = {c.label for c in circuit}
    others = [h for h in heads if h.label not in keep]
    options = {"method": method, "reference": reference, "corrupted": corrupted}
    no_heads = ablate(model, tokens, heads, metric, **options)
    # Every head in the circuit: nothing else to ablate, so the circuit is the full model.
    circuit_only = ablate(model, tokens, others, metric, **options).metric_ablated if others else no_heads.metric_full
    return CircuitFaithfulness(
        tuple(c.label for c in circuit), method, metric.label, no_heads.metric_full, circuit_only, no_heads.metric_ablated
    )


@dataclasses.dataclass(frozen=True)
class CircuitAblation:
    """A set of components ablated together, and — when the set has heads — how faithful those heads are alone."""

    ablation: AblationResult
    faithfulness: CircuitFaithfulness | None = None


@dataclasses.dataclass(frozen=True)
class AblationRun(RunSpec):
    """Ablate a set of components of one task's clean prompts together; keep only its heads for faithfulness.

    Mean ablation averages over the task's clean and corrupted prompts (:func:`reference_batch`); resample
    ablation writes the corrupted prompts' values.
    """

    kind: ClassVar[str] = "ablation"
    title: ClassVar[str] = "Ablation"
    mirrors = (ablate, circuit_faithfulness)

    task: CircuitTask
    components: tuple[str, ...]  # component labels (interp.components)
    method: AblationMethod = default_of(ablate, "method")

    def __post_init__(self) -> None:
        check_choice("ablation", self.method, ABLATIONS)
        if not self.components:
            raise InputError("Choose at least one component to ablate.")
        for label in self.components:
            Component.from_label(label)  # a label that names nothing fails here, with the format to use

    def run(self, model: LoadedModel, progress: Progress | None = None) -> CircuitAblation:
        task = self.task.build(model)
        components = [Component.from_label(label) for label in self.components]
        _check_in_model(model, components)
        options = {"method": self.method, "reference": reference_batch(task), "corrupted": task.corrupted}
        together = ablate(model, task.clean, components, task.metric, **options)
        heads = [c for c in components if c.kind == "head"]
        if not heads:  # faithfulness is about heads: keep only the chosen ones, ablate every other head
            return CircuitAblation(together)
        if progress is not None:
            progress(0.5, "Keeping only the chosen heads")
        return CircuitAblation(together, circuit_faithfulness(model, task.clean, heads, task.metric, **options))


def _check_in_model(model: LoadedModel, components: Sequence[Component]) -> None:
    for c in components:
        if c.layer >= model.info.n_layers or (c.kind == "head" and c.index >= model.info.n_heads):
            raise InputError(f"{c.label} is not in this model ({model.info.n_layers} layers of {model.info.n_heads} heads).")
