"""Which components cause a behaviour? Ablation, activation patching, attribution patching, DLA.

Every method compares a metric — a number computed from the logits, such as the logit difference
between the right and the wrong answer — across runs in which some internal activation is changed:

* **Ablation** replaces a component's output with zero, its mean over a reference batch, or its
  value on a corrupted prompt (resample), alone or as a *set*, and reports the metric. Keeping only
  a candidate circuit (ablating everything else) tests whether the circuit is sufficient.
* **Activation patching** (causal tracing, Meng et al. 2022; Wang et al. 2022) runs the corrupted
  prompt and copies in one clean activation at a time (``denoise``), or the reverse (``noise``).
  Scores are normalised so 1 = the clean metric is fully recovered and 0 = still corrupted. A
  sweep is batched: each row of a forward pass patches a different site.
* **Attribution patching** (Nanda 2023; Syed et al. 2023) approximates every patch at once with
  a first-order Taylor expansion: ``(clean - corrupted) · ∂metric/∂activation``, from two forward
  passes and one backward. Fast, and wrong where the metric is far from linear; shown beside the
  real thing with their rank correlation, so you can see when to trust it.
* **Direct logit attribution** splits the final residual stream into the outputs that wrote it
  (embeddings, every head, every MLP) and reads each through the frozen final norm and the
  unembedding. It measures *direct* effects only: a head that matters by steering later heads
  shows up in patching, not here.

All runs go through :func:`interp.hooks.intervene`; no hook survives a call.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel
from interp.activations import record

SITE_KINDS = ("heads", "resid_pre", "attn_out", "mlp_out")
SITE_TITLES = {
    "heads": "Attention heads (output z, all positions)",
    "resid_pre": "Residual stream (before each block)",
    "attn_out": "Attention output",
    "mlp_out": "MLP output",
}
ABLATIONS = ("zero", "mean", "resample")


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number per run, computed from logits ``[rows, pos, vocab]`` of a batch of ``batch`` prompts.

    Build with :meth:`logit_diff`, :meth:`log_prob` or :meth:`repeated_loss`. ``answers`` and
    ``wrongs`` hold one token id per prompt in the batch; rows of a sweep are sites x prompts.
    """

    kind: str  # "logit_diff" | "log_prob" | "repeated_loss"
    answers: tuple[int, ...] = ()
    wrongs: tuple[int, ...] = ()
    targets: tuple[tuple[int, ...], ...] = ()  # repeated_loss: the clean tokens, per prompt
    positions: tuple[int, ...] = ()  # repeated_loss: positions whose next token is scored
    label: str = ""

    @classmethod
    def logit_diff(cls, answers: Sequence[int], wrongs: Sequence[int], label: str = "logit difference") -> Metric:
        return cls("logit_diff", tuple(answers), tuple(wrongs), label=label)

    @classmethod
    def log_prob(cls, answers: Sequence[int], label: str = "log-probability of the answer") -> Metric:
        return cls("log_prob", tuple(answers), label=label)

    @classmethod
    def repeated_loss(
        cls, targets: torch.Tensor, positions: Sequence[int], label: str = "loss on the repeated tokens (nats)"
    ) -> Metric:
        return cls(
            "repeated_loss", targets=tuple(tuple(row) for row in targets.tolist()), positions=tuple(positions), label=label
        )

    @property
    def batch(self) -> int:
        return len(self.targets) if self.kind == "repeated_loss" else len(self.answers)

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "repeated_loss"

    @property
    def unit(self) -> str:
        """Log-probabilities and losses are in nats; a logit difference is in logits (a log-odds, nats too)."""
        return "logits" if self.kind == "logit_diff" else "nats"

    def logits_to_keep(self) -> int:
        """How many trailing positions' logits the metric reads (the unembedding is skipped elsewhere)."""
        if self.kind == "repeated_loss":
            return len(self.targets[0]) - min(self.positions)
        return 1

    def per_row(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric for every row; row ``r`` belongs to prompt ``r % batch``.

        ``logits`` may hold only the last :meth:`logits_to_keep` positions.
        """
        rows = logits.shape[0]
        prompt = torch.arange(rows, device=logits.device) % self.batch
        if self.kind == "repeated_loss":
            positions = torch.tensor(self.positions, device=logits.device)
            targets = torch.tensor(self.targets, device=logits.device)[prompt][:, positions + 1]
            first_kept = len(self.targets[0]) - logits.shape[1]
            log_probs = torch.log_softmax(logits[:, positions - first_kept].float(), dim=-1)
            return -log_probs.gather(-1, targets[..., None])[..., 0].mean(dim=-1)
        final = logits[:, -1].float()
        answers = torch.tensor(self.answers, device=logits.device)[prompt]
        if self.kind == "logit_diff":
            wrongs = torch.tensor(self.wrongs, device=logits.device)[prompt]
            return final.gather(-1, answers[:, None])[:, 0] - final.gather(-1, wrongs[:, None])[:, 0]
        return torch.log_softmax(final, dim=-1).gather(-1, answers[:, None])[:, 0]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric averaged over the prompts of each site: ``[rows // batch]``."""
        return self.per_row(logits).view(-1, self.batch).mean(dim=-1)


# ---------------------------------------------------------------------------------------------
# Sites


COMPONENT_LABEL = re.compile(r"L(?P<layer>\d+)(?:\.H(?P<head>\d+)| (?P<kind>attn_out|mlp_out|resid_pre)(?: @ pos (?P<pos>\d+))?)")


@dataclasses.dataclass(frozen=True)
class Component:
    """A thing to ablate or patch: a head, a layer's attention or MLP output, or a residual position."""

    kind: str  # "head" | "attn_out" | "mlp_out" | "resid_pre"
    layer: int
    index: int | None = None  # head for "head"; position for the others (None: all positions)

    @property
    def hook_name(self) -> str:
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z"
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def label(self) -> str:
        if self.kind == "head":
            return f"L{self.layer}.H{self.index}"
        where = "" if self.index is None else f" @ pos {self.index}"
        return f"L{self.layer} {self.kind}{where}"

    @classmethod
    def from_label(cls, label: str) -> Component:
        """The component a :attr:`label` names (``L3.H2``, ``L3 attn_out``, ``L3 resid_pre @ pos 5``)."""
        match = COMPONENT_LABEL.fullmatch(label.strip())
        if match is None:
            raise InputError(f"{label!r} names no component; write L<layer>.H<head>, or L<layer> attn_out / mlp_out / resid_pre.")
        layer = int(match["layer"])
        if match["head"] is not None:
            return cls("head", layer, int(match["head"]))
        return cls(match["kind"], layer, None if match["pos"] is None else int(match["pos"]))

    def select(self, activation: torch.Tensor) -> tuple:
        """Index into an activation ``[rows, pos, ...]`` picking this component (all rows)."""
        if self.kind == "head":
            return (slice(None), slice(None), self.index)  # hook_z: [rows, pos, head, d_head]
        if self.index is None:
            return (slice(None),)
        return (slice(None), self.index)


def all_heads(model: LoadedModel) -> list[Component]:
    return [Component("head", layer, head) for layer in range(model.info.n_layers) for head in range(model.info.n_heads)]


def ablatable_components(model: LoadedModel) -> list[Component]:
    """What the Circuits page offers to ablate together: every head, then each layer's attention and MLP output."""
    layers = range(model.info.n_layers)
    return all_heads(model) + [Component(kind, layer) for layer in layers for kind in ("attn_out", "mlp_out")]


def _sites(model: LoadedModel, kind: str, n_positions: int) -> list[Component]:
    if kind == "heads":
        return all_heads(model)
    if kind not in SITE_KINDS:
        raise InputError(f"Unknown site kind {kind!r}; choose from {', '.join(SITE_KINDS)}.")
    return [Component(kind, layer, pos) for layer in range(model.info.n_layers) for pos in range(n_positions)]


# ---------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class PatchingResult:
    """Normalised patching scores over a grid of sites (1 = clean metric recovered, 0 = corrupted)."""

    kind: str
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

    def ranked(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` sites with the largest absolute score, as ``(label, score)``."""
        flat = np.argsort(-np.abs(self.values), axis=None)[:k]
        columns = self.values.shape[1]
        return [(f"{self.row_labels[i // columns]} {self.column_labels[i % columns]}", float(self.values.flat[i])) for i in flat]

    def to_frame(self):
        import pandas as pd

        rows, cols = np.indices(self.values.shape)
        return pd.DataFrame(
            {
                "layer": [self.row_labels[r] for r in rows.ravel()],
                "site": [self.column_labels[c] for c in cols.ravel()],
                "score": self.values.ravel(),
                "method": self.method,
                "kind": self.kind,
            }
        )


@dataclasses.dataclass(frozen=True)
class AblationResult:
    components: tuple[str, ...]
    method: str
    metric_label: str
    metric_full: float
    metric_ablated: float

    @property
    def change(self) -> float:
        return self.metric_ablated - self.metric_full


# ---------------------------------------------------------------------------------------------
# Running with replacements


def _run_metric(model: LoadedModel, tokens: torch.Tensor, metric: Metric, hooks=None) -> float:
    with intervene(model, hooks), torch.inference_mode():
        return float(metric(model.bridge(tokens.to(model.device), logits_to_keep=metric.logits_to_keep()))[0])


def _replacement_hooks(sites_per_row: Sequence[Component], sources: dict[str, torch.Tensor], batch: int):
    """Hooks that, for chunk row ``r``, overwrite site ``sites_per_row[r // batch]`` with its source value.

    ``sources[hook_name]`` is ``[batch, pos, ...]``: the value to write for each prompt.
    """
    by_hook: dict[str, list[tuple[int, Component]]] = defaultdict(list)
    for row, site in enumerate(sites_per_row):
        by_hook[site.hook_name].append((row, site))

    def make(assignments: list[tuple[int, Component]], source: torch.Tensor) -> Callable:
        def replace(activation: torch.Tensor, hook: HookSite) -> torch.Tensor:
            activation = activation.clone()
            for row, site in assignments:
                rows = slice(row * batch, (row + 1) * batch)
                index = site.select(activation)[1:]
                activation[(rows, *index)] = source[(slice(None), *index)].to(activation.dtype)
            return activation

        return replace

    return [(name, make(assignments, sources[name])) for name, assignments in by_hook.items()]


def _record_sites(model: LoadedModel, tokens: torch.Tensor, hook_names: Sequence[str]) -> dict[str, torch.Tensor]:
    return record(model, tokens, sorted(set(hook_names))).activations


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
    _check_pair(clean, corrupted)
    start = time.perf_counter()
    base, source_tokens = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    sites = _sites(model, kind, clean.shape[1])
    sources = _record_sites(model, source_tokens, [s.hook_name for s in sites])
    metric_clean, metric_corrupted = _run_metric(model, clean, metric), _run_metric(model, corrupted, metric)
    prompts = clean.shape[0]
    per_chunk = max(1, batch_size // prompts)
    values = []
    for begin in range(0, len(sites), per_chunk):
        chunk = sites[begin : begin + per_chunk]
        tokens = base.repeat(len(chunk), 1).to(model.device)
        with intervene(model, _replacement_hooks(chunk, sources, prompts)), torch.inference_mode():
            values.append(metric(model.bridge(tokens, logits_to_keep=metric.logits_to_keep())).cpu())
        if progress is not None:
            progress(min(1.0, (begin + len(chunk)) / len(sites)))
    raw = torch.cat(values).numpy()
    normalised = _normalise(raw, metric_clean, metric_corrupted)
    return _result(model, kind, "activation", direction, normalised, clean.shape[1], metric, metric_clean, metric_corrupted,
                   time.perf_counter() - start, len(sites) * prompts + 2 * prompts, raw)  # fmt: skip


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
    _check_pair(clean, corrupted)
    start = time.perf_counter()
    base, source_tokens = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    n_positions = clean.shape[1]
    sites = _sites(model, kind, n_positions)
    names = sorted({s.hook_name for s in sites})
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
    raw = np.array([float(estimates[s.hook_name][s.index]) + metric_base for s in sites])
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
        row_labels=tuple(f"L{layer}" for layer in range(n_layers)),
        column_labels=tuple(columns),
        metric_label=metric.label,
        metric_clean=clean,
        metric_corrupted=corrupted,
        seconds=seconds,
        forward_rows=rows,
        raw_values=raw.reshape(n_layers, len(columns)),
    )


def _check_pair(clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise InputError(
            f"The clean and corrupted prompts must have the same number of tokens (got {clean.shape[-1]} and "
            f"{corrupted.shape[-1]}), so activations line up position by position. Align them first."
        )


# ---------------------------------------------------------------------------------------------
# Ablation


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
        _check_pair(tokens, corrupted)
        return _record_sites(model, corrupted, names)
    shapes = _record_sites(model, tokens[:1], names)
    if method == "zero":
        return {name: torch.zeros_like(value).expand(tokens.shape[0], *value.shape[1:]) for name, value in shapes.items()}
    if reference is None:
        raise InputError("Mean ablation needs a reference batch to average over.")
    recorded = _record_sites(model, reference, names)
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
    full = _run_metric(model, tokens, metric)
    ablated = _run_metric(model, tokens, metric, hooks)
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
) -> PatchingResult:
    """Ablate each head alone (batched); ``values`` is the metric's change, ablated minus full."""
    start = time.perf_counter()
    heads = all_heads(model)
    values = ablation_values(model, tokens, heads, method, reference=reference, corrupted=corrupted)
    full = _run_metric(model, tokens, metric)
    prompts = tokens.shape[0]
    per_chunk = max(1, batch_size // prompts)
    out = []
    for begin in range(0, len(heads), per_chunk):
        chunk = heads[begin : begin + per_chunk]
        with intervene(model, _replacement_hooks(chunk, values, prompts)), torch.inference_mode():
            repeated = tokens.repeat(len(chunk), 1).to(model.device)
            out.append(metric(model.bridge(repeated, logits_to_keep=metric.logits_to_keep())).cpu())
    change = torch.cat(out).numpy() - full
    return PatchingResult(
        kind="heads",
        method=f"{method} ablation",
        direction="ablate",
        values=change.reshape(model.info.n_layers, model.info.n_heads),
        row_labels=tuple(f"L{layer}" for layer in range(model.info.n_layers)),
        column_labels=tuple(f"H{h}" for h in range(model.info.n_heads)),
        metric_label=metric.label,
        metric_clean=full,
        metric_corrupted=math.nan,
        seconds=time.perf_counter() - start,
        forward_rows=len(heads) * prompts + prompts,
    )


def circuit_faithfulness(
    model: LoadedModel, tokens: torch.Tensor, circuit: Sequence[Component], metric: Metric, *, method: str = "mean",
    reference: torch.Tensor | None = None, corrupted: torch.Tensor | None = None,
) -> tuple[float, float, float]:  # fmt: skip
    """Keep only ``circuit``'s heads (ablate every other head): ``(full, circuit only, no heads)`` metrics.

    The circuit is faithful when "circuit only" is close to "full" and far from "no heads".
    """
    heads = all_heads(model)
    keep = {c.label for c in circuit}
    others = [h for h in heads if h.label not in keep]
    options = {"method": method, "reference": reference, "corrupted": corrupted}
    only_circuit = ablate(model, tokens, others, metric, **options)
    no_heads = ablate(model, tokens, heads, metric, **options)
    return only_circuit.metric_full, only_circuit.metric_ablated, no_heads.metric_ablated


# ---------------------------------------------------------------------------------------------
# Direct logit attribution


@dataclasses.dataclass(frozen=True)
class DirectLogitAttribution:
    """Each component's direct contribution to a logit-based metric at the last position.

    ``heads[layer, head]`` and ``mlps[layer]`` are contributions; ``embeddings`` the token (and
    position) embeddings'; ``attn_biases[layer]`` each attention output bias'; ``bias`` the final
    norm's and unembedding's constant terms. They sum to ``metric``.
    """

    heads: np.ndarray
    mlps: np.ndarray
    attn_biases: np.ndarray
    embeddings: float
    bias: float
    metric: float
    metric_label: str

    @property
    def total(self) -> float:
        return float(self.heads.sum() + self.mlps.sum() + self.attn_biases.sum() + self.embeddings + self.bias)

    def ranked(self, k: int = 10) -> list[tuple[str, float]]:
        entries = [(f"L{layer}.H{head}", float(v)) for (layer, head), v in np.ndenumerate(self.heads)]
        entries += [(f"L{layer} MLP", float(v)) for layer, v in enumerate(self.mlps)]
        entries.append(("embeddings", self.embeddings))
        return sorted(entries, key=lambda e: -abs(e[1]))[:k]


def direct_logit_attribution(model: LoadedModel, tokens: torch.Tensor, metric: Metric) -> DirectLogitAttribution:
    """Split a logit-difference (or answer-logit) metric over the components that wrote the residual stream.

    Averaged over the prompts of ``tokens``. For a log-probability metric the answer's *logit* is
    attributed (the softmax normaliser is not a sum of components).
    """
    if metric.kind == "repeated_loss":
        raise InputError("Direct logit attribution explains a logit at one position; choose a logit-difference or answer metric.")
    n_layers = model.info.n_layers
    names = ["blocks.0.hook_resid_pre", f"blocks.{n_layers - 1}.hook_resid_post"]
    names += [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    names += [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]
    recording = record(model, tokens, names)
    acts = {name: value[:, -1] for name, value in recording.activations.items()}  # last position
    final_resid = acts[names[1]]  # [batch, d_model]
    norm = model.bridge.ln_final.original_component
    unembed = model.bridge.unembed.original_component
    answers = torch.tensor(metric.answers, device=final_resid.device)
    direction = unembed.weight[answers].detach().float()  # [batch, d_model]
    bias_direction = unembed.bias[answers].float() if getattr(unembed, "bias", None) is not None else torch.zeros(len(answers))
    if metric.kind == "logit_diff":
        wrongs = torch.tensor(metric.wrongs, device=final_resid.device)
        direction = direction - unembed.weight[wrongs].detach().float()
        if getattr(unembed, "bias", None) is not None:
            bias_direction = bias_direction - unembed.bias[wrongs].float()
    with torch.no_grad():
        readout, constant = _frozen_norm_readout(norm, final_resid.float(), direction.detach())

    def read(component: torch.Tensor) -> float:  # [batch, d_model] -> mean contribution
        with torch.no_grad():
            return float(readout(component.float()).mean())

    heads = np.zeros((n_layers, model.info.n_heads))
    biases = np.zeros(n_layers)
    with intervene(model), torch.inference_mode():
        for layer in range(n_layers):
            z = acts[f"blocks.{layer}.attn.hook_z"]  # [batch, head, d_head]
            o = model.bridge.blocks[layer].attn.o
            zero_out = o(torch.zeros(z.shape[0], z.shape[1] * z.shape[2], device=z.device))
            biases[layer] = read(zero_out)
            for head in range(model.info.n_heads):
                only = torch.zeros_like(z)
                only[:, head] = z[:, head]
                heads[layer, head] = read(o(only.flatten(1)) - zero_out)
    mlps = np.array([read(acts[f"blocks.{layer}.hook_mlp_out"]) for layer in range(n_layers)])
    if metric.kind == "logit_diff":
        metric_value = float(metric(recording.logits)[0])
    else:
        metric_value = float(recording.logits[:, -1].float().gather(-1, answers[:, None])[:, 0].mean())
    return DirectLogitAttribution(
        heads=heads,
        mlps=mlps,
        attn_biases=biases,
        embeddings=read(acts["blocks.0.hook_resid_pre"]),
        bias=float((constant + bias_direction).mean()),
        metric=metric_value,
        metric_label=metric.label if metric.kind == "logit_diff" else "answer logit",
    )


def _frozen_norm_readout(norm: torch.nn.Module, resid: torch.Tensor, direction: torch.Tensor):
    """The final norm with its scale frozen at ``resid``: a linear readout plus a constant.

    RMSNorm: ``w * x / rms(resid)``; LayerNorm: ``w * (x - mean(x)) / std(resid) + b``. Linear in
    ``x`` once the scale is fixed, so the residual's components can be read one by one.
    """
    weight = norm.weight.float()
    if hasattr(norm, "variance_epsilon") or type(norm).__name__.endswith("RMSNorm"):
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6))
        scale = torch.sqrt(resid.pow(2).mean(dim=-1, keepdim=True) + eps)
        offset = float(getattr(norm, "offset", 0.0) or 0.0)  # Gemma-style (1 + w) norms
        return (lambda x: ((x / scale) * (weight + offset) * direction).sum(-1)), torch.zeros(resid.shape[0])
    if isinstance(norm, torch.nn.LayerNorm):
        scale = torch.sqrt(resid.var(dim=-1, unbiased=False, keepdim=True) + norm.eps)

        def readout(x: torch.Tensor) -> torch.Tensor:
            return (((x - x.mean(dim=-1, keepdim=True)) / scale) * weight * direction).sum(-1)

        constant = (norm.bias.float() * direction).sum(-1) if norm.bias is not None else torch.zeros(resid.shape[0])
        return readout, constant
    raise InputError(f"Direct logit attribution supports LayerNorm and RMSNorm models, not {type(norm).__name__}.")
