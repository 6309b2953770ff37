"""Activation patching and its fast first-order estimate, attribution patching.

* **Activation patching** (causal tracing, Meng et al. 2022; Wang et al. 2022) runs the corrupted
  prompt and copies in one clean activation at a time (``denoise``), or the reverse (``noise``).
  Scores are normalised so 1 = the clean metric is fully recovered and 0 = still corrupted. A
  sweep is batched: each row of a forward pass patches a different site.
* **Attribution patching** (Nanda 2023; Syed et al. 2023) approximates every patch at once with
  a first-order Taylor expansion: ``(clean - corrupted) · ∂metric/∂activation``, from two forward
  passes and one backward. Fast, and wrong where the metric is far from linear; shown beside the
  real thing with their rank correlation, so you can see when to trust it.

Scores are NaN only where the clean and corrupted metrics tie: there is nothing to recover, and
:attr:`PatchingResult.comparable` says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import torch
from scipy.stats import spearmanr

from interp.activations import record
from interp.circuits.metric import Metric
from interp.circuits.replacement import check_pair, record_sites, run_metric, sweep_rows
from interp.circuits.tasks import CircuitTask
from interp.components import SITE_KINDS, SiteKind, layer_label, site_component
from interp.components import sites as site_grid
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_choice, default_of

Direction = Literal["denoise", "noise"]
DIRECTIONS = ("denoise", "noise")


@dataclasses.dataclass(frozen=True)
class PatchingResult:
    """Normalised patching scores over a grid of sites (1 = clean metric recovered, 0 = corrupted)."""

    kind: str  # the sites: "heads" | "resid_pre" | "attn_out" | "mlp_out"
    method: str  # "activation" | "attribution"
    direction: str  # "denoise" (clean into corrupted) | "noise" (corrupted into clean)
    values: np.ndarray  # [layer, position] or [layer, head]; NaN when clean and corrupted tie
    row_labels: tuple[str, ...]
    column_labels: tuple[str, ...]
    metric_label: str
    metric_clean: float
    metric_corrupted: float
    seconds: float
    forward_rows: int
    raw_values: np.ndarray | None = None  # the metric itself for each patched run (estimated, for attribution)

    @property
    def comparable(self) -> bool:
        """False when the clean and corrupted metrics tie, so scores cannot be normalised."""
        return bool(np.isfinite(self.values).all())

    def component_labels(self) -> np.ndarray:
        """The component label of every cell (``L1.H2``, ``L1.resid_pre@5``), shaped like :attr:`values`."""
        rows, columns = self.values.shape
        return np.array(
            [[site_component(self.kind, layer, column).label for column in range(columns)] for layer in range(rows)],
            dtype=object,
        )

    def ranked(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` sites with the largest absolute score, as ``(component label, score)``."""
        flat = np.argsort(-np.abs(self.values), axis=None)[:k]
        labels = self.component_labels().ravel()
        return [(str(labels[i]), float(self.values.flat[i])) for i in flat]

    def to_frame(self):
        import pandas as pd

        rows, cols = np.indices(self.values.shape)
        return pd.DataFrame(
            {
                "component": self.component_labels().ravel(),
                "layer": [self.row_labels[r] for r in rows.ravel()],
                "site": [self.column_labels[c] for c in cols.ravel()],
                "score": self.values.ravel(),
                "method": self.method,
                "kind": self.kind,
            }
        )


@dataclasses.dataclass(frozen=True)
class PatchingPair:
    """The same sweep by activation patching (exact) and attribution patching (its first-order estimate)."""

    activation: PatchingResult
    attribution: PatchingResult

    @property
    def correlation(self) -> float:
        """Spearman rank correlation of the two over every site: how far to trust the estimate here."""
        return float(spearmanr(self.activation.values.ravel(), self.attribution.values.ravel()).statistic)


def patch_sweep(
    model: LoadedModel,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: Metric,
    kind: str = "heads",
    *,
    direction: str = "denoise",
    batch_size: int = 64,
    progress: Callable[[float], None] | None = None,
) -> PatchingResult:
    """Activation patching over every site of one kind, batched (rows = sites x prompts).

    Args:
        clean, corrupted: ``[batch, pos]`` token ids of equal shape.
        kind: "resid_pre", "attn_out", "mlp_out" (layers x positions) or "heads" (layers x heads).
        direction: "denoise" runs the corrupted prompts and patches in clean values; "noise" the reverse.
    """
    check_pair(clean, corrupted)
    start = time.perf_counter()
    base, source_tokens = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    chosen = site_grid(model, kind, clean.shape[1])
    sources = record_sites(model, source_tokens, [s.hook_name for s in chosen])
    metric_clean, metric_corrupted = run_metric(model, clean, metric), run_metric(model, corrupted, metric)
    raw = sweep_rows(model, base, chosen, sources, metric, batch_size=batch_size, progress=progress).numpy()
    normalised = _normalise(raw, metric_clean, metric_corrupted)
    prompts = clean.shape[0]
    return _result(model, kind, "activation", direction, normalised, clean.shape[1], metric, metric_clean, metric_corrupted,
                   time.perf_counter() - start, len(chosen) * prompts + 2 * prompts, raw)  # fmt: skip


def attribution_patch(
    model: LoadedModel,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: Metric,
    kind: str = "heads",
    *,
    direction: str = "denoise",
) -> PatchingResult:
    """Attribution patching: every site at once from two forward passes and one backward pass."""
    check_pair(clean, corrupted)
    start = time.perf_counter()
    base, source_tokens = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    n_positions = clean.shape[1]
    chosen = site_grid(model, kind, n_positions)
    names = sorted({s.hook_name for s in chosen})
    # Forward 1: the source run, keeping its activations and its metric.
    source_run = record(model, source_tokens, names, logits_to_keep=metric.logits_to_keep())
    sources, metric_source = source_run.activations, float(metric(source_run.logits)[0])
    kept: dict[str, torch.Tensor] = {}

    def keep(activation: torch.Tensor, hook: HookSite) -> torch.Tensor:
        kept[hook.name] = activation
        return activation  # returned, so the rest of the forward pass is computed from this tensor

    # Forward 2 and the one backward pass: the base run and the metric's gradient at every site.
    with intervene(model, [(name, keep) for name in names]), torch.enable_grad():
        logits = model.bridge(base.to(model.device), logits_to_keep=metric.logits_to_keep())
        value = metric(logits)[0]
        gradients = torch.autograd.grad(value, [kept[name] for name in names])
    metric_base = float(value.detach())
    metric_clean, metric_corrupted = (metric_source, metric_base) if direction == "denoise" else (metric_base, metric_source)
    estimates = {}
    for name, gradient in zip(names, gradients, strict=True):
        delta = sources[name] - kept[name].detach()
        product = (delta * gradient).sum(dim=0)  # over prompts: the metric is a mean over them
        estimates[name] = product.sum(dim=(0, -1)) if kind == "heads" else product.sum(dim=-1)  # [head] or [pos]
    raw = np.array([float(estimates[s.hook_name][s.index]) + metric_base for s in chosen])
    normalised = _normalise(raw, metric_clean, metric_corrupted)
    return _result(model, kind, "attribution", direction, normalised, n_positions, metric, metric_clean, metric_corrupted,
                   time.perf_counter() - start, 2 * clean.shape[0], raw)  # fmt: skip


def _normalise(raw: np.ndarray, clean: float, corrupted: float) -> np.ndarray:
    """Scale so 1 = clean and 0 = corrupted; NaN when they tie (nothing to recover)."""
    gap = clean - corrupted
    if abs(gap) < 1e-9:
        return np.full_like(raw, np.nan, dtype=np.float64)
    return (raw - corrupted) / gap


def _result(
    model, kind, method, direction, normalised, n_positions, metric, clean, corrupted, seconds, rows, raw
) -> PatchingResult:
    n_layers = model.info.n_layers
    columns = [f"H{h}" for h in range(model.info.n_heads)] if kind == "heads" else [f"pos {p}" for p in range(n_positions)]
    return PatchingResult(
        kind=kind,
        method=method,
        direction=direction,
        values=normalised.reshape(n_layers, len(columns)),
        row_labels=tuple(layer_label(layer) for layer in range(n_layers)),
        column_labels=tuple(columns),
        metric_label=metric.label,
        metric_clean=clean,
        metric_corrupted=corrupted,
        seconds=seconds,
        forward_rows=rows,
        raw_values=raw.reshape(n_layers, len(columns)),
    )


@dataclasses.dataclass(frozen=True)
class PatchingRun(RunSpec):
    """Activation patching of one task over one kind of site, with attribution patching's estimate beside it."""

    kind: ClassVar[str] = "patching"
    title: ClassVar[str] = "Patching sweep"
    mirrors = (patch_sweep, attribution_patch)

    task: CircuitTask
    sites: SiteKind = default_of(patch_sweep, "kind")
    direction: Direction = default_of(patch_sweep, "direction")

    def __post_init__(self) -> None:
        check_choice("site kind", self.sites, SITE_KINDS)
        check_choice("direction", self.direction, DIRECTIONS)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> PatchingPair:
        task = self.task.build(model)
        report = (lambda f: progress(0.9 * f, f"Activation patching: {100 * f:.0f}% of sites")) if progress else None
        exact = patch_sweep(model, task.clean, task.corrupted, task.metric, self.sites, direction=self.direction, progress=report)
        if progress is not None:
            progress(0.92, "Attribution patching (2 forward + 1 backward)")
        estimate = attribution_patch(model, task.clean, task.corrupted, task.metric, self.sites, direction=self.direction)
        return PatchingPair(exact, estimate)
