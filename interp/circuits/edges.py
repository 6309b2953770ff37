"""Circuits at the level of edges: which head's output, read by which later input, carries a behaviour.

The model's computational graph (as in ACDC, EAP and MIB): **upstream nodes** write to the residual stream
(the embeddings ``input``, every head's output ``L1.H2``, every MLP ``L1.mlp``); **downstream inputs** read from
it (every head's query input ``L1.H2.q``, key and value inputs, every MLP's input ``L1.mlp``, and the
``logits``). Because the residual stream is a sum, the input of a downstream node is the sum of the outputs
of every upstream node before it, and an **edge** ``u -> v`` is one term of that sum. Patching an edge replaces
that one term with its value on the corrupted prompt, leaving every other reader of ``u`` alone.

* **EAP** (edge attribution patching; Syed et al. 2023) estimates every edge's patching effect at once, to
  first order: ``(out_u(corrupted) - out_u(clean)) · ∂metric/∂in_v`` at the clean run, from one clean and one
  corrupted forward and one backward pass.
* **EAP-IG** (Hanna et al. 2024) averages that gradient over ``m`` runs whose input embeddings lie on the
  straight line from the corrupted to the clean prompt (midpoints of ``m`` equal steps). The scores of the
  edges out of ``input`` then add up to the metric's whole change, ``metric(corrupted) - metric(clean)``, as
  ``m`` grows (integrated gradients' completeness); EAP's need not.
* **Real edge patching** (:func:`edge_patched_metric`) runs the clean prompt with chosen edges patched from the
  corrupted run: each downstream input is rebuilt as its corrupted value plus, for each kept edge, the
  upstream node's current minus its corrupted output. This checks an estimate (path patching of one edge),
  and measures a circuit's **faithfulness** (every edge outside it patched).

**Grouped-query attention** (SmolLM2: 9 query heads share 3 key/value heads): a key or value input is one
downstream node per *key/value head* (``L1.KV0.k``), read by every query head of its group, so an edge into
it is scored once and patching it changes the keys of the whole group, as in the model. Without GQA the key
input of head 2 is ``L1.H2.k``.

Everything runs through :func:`interp.hooks.intervene` on the TransformerLens bridge's hook points: the
per-head query/key/value inputs are made at ``attn.hook_q/k/v`` by applying the layer's own first norm and
projection to each head's own copy of the residual stream (the bridge has no split-input hooks).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import torch

from interp.circuits.metric import Metric
from interp.circuits.replacement import check_pair
from interp.circuits.tasks import CircuitTask
from interp.components import head_label, layer_label
from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel, ModelInfo
from interp.runs.spec import Progress, RunSpec, check_choice, default_of

INPUT = "input"
LOGITS = "logits"
EDGE_METHODS = ("eap", "eap-ig")
EdgeMethod = Literal["eap", "eap-ig"]
EDGE_METHOD_TITLES = {"eap": "EAP (one gradient, at the clean run)", "eap-ig": "EAP-IG (gradients along the path)"}


# ---------------------------------------------------------------------------------------------
# The graph


@dataclasses.dataclass(frozen=True)
class EdgeGraph:
    """Every node and edge of a model's computational graph (see the module's docstring).

    ``real[v, u]`` says whether upstream node ``u`` is written before downstream input ``v`` reads (an edge).
    """

    upstream: tuple[str, ...]  # "input", then per layer each head "L1.H2" and the MLP "L1.mlp"
    downstream: tuple[str, ...]  # per layer each head's "L1.H2.q", each key/value head's k and v, "L1.mlp"; "logits"
    upstream_layer: tuple[int, ...]  # -1 for the input
    downstream_layer: tuple[int, ...]  # n_layers for the logits
    downstream_node: tuple[str, ...]  # the node a downstream input belongs to: "L1.H2", "L1.mlp", "logits"
    downstream_heads: tuple[tuple[int, ...], ...]  # the query heads an input feeds (a shared k/v input: its group)
    real: np.ndarray  # bool [n_downstream, n_upstream]

    @property
    def n_edges(self) -> int:
        return int(self.real.sum())

    def edge_label(self, v: int, u: int) -> str:
        return f"{self.upstream[u]} -> {self.downstream[v]}"

    def edge_index(self, label: str) -> tuple[int, int]:
        """``(v, u)`` of an edge written ``"L0.H1 -> L1.H2.k"``."""
        source, _, target = (part.strip() for part in label.partition("->"))
        if source not in self.upstream or target not in self.downstream:
            raise InputError(f"{label!r} names no edge; write e.g. '{self.upstream[1]} -> {self.downstream[-1]}'.")
        v, u = self.downstream.index(target), self.upstream.index(source)
        if not self.real[v, u]:
            raise InputError(f"{label!r} is not an edge: {target} is computed before {source} is written.")
        return v, u

    def feeds(self, v: int) -> tuple[str, ...]:
        """The nodes whose computation reads downstream input ``v`` (every query head of a shared k/v input's group)."""
        if not self.downstream_heads[v]:
            return (self.downstream_node[v],)
        layer = self.downstream_layer[v]
        return tuple(head_label(layer, head) for head in self.downstream_heads[v])

    def all_edges(self) -> list[tuple[int, int]]:
        return [(int(v), int(u)) for v, u in zip(*np.nonzero(self.real), strict=True)]


def edge_graph(info: ModelInfo) -> EdgeGraph:
    """The computational graph of a model with ``info``'s layers, heads and key/value heads."""
    n_layers, n_heads = info.n_layers, info.n_heads
    n_kv = info.n_kv_heads or n_heads
    group = n_heads // n_kv
    upstream, upstream_layer = [INPUT], [-1]
    downstream, downstream_layer, downstream_node, downstream_heads = [], [], [], []
    reads_attention = []  # per downstream input: whether it reads its own layer's heads (MLP inputs and logits do)
    for layer in range(n_layers):
        heads = [head_label(layer, head) for head in range(n_heads)]
        for head in range(n_heads):
            downstream += [f"{heads[head]}.q"]
            downstream_node += [heads[head]]
            downstream_heads += [(head,)]
        for kind in ("k", "v"):
            for kv in range(n_kv):
                served = tuple(range(kv * group, (kv + 1) * group))
                downstream += [f"{heads[kv]}.{kind}" if group == 1 else f"{layer_label(layer)}.KV{kv}.{kind}"]
                downstream_node += [heads[served[0]]]
                downstream_heads += [served]
        downstream += [f"{layer_label(layer)}.mlp"]
        downstream_node += [f"{layer_label(layer)}.mlp"]
        downstream_heads += [()]
        added = n_heads + 2 * n_kv + 1
        downstream_layer += [layer] * added
        reads_attention += [False] * (added - 1) + [True]
        upstream += [*heads, f"{layer_label(layer)}.mlp"]
        upstream_layer += [layer] * (n_heads + 1)
    downstream += [LOGITS]
    downstream_node += [LOGITS]
    downstream_heads += [()]
    downstream_layer += [n_layers]
    reads_attention += [True]
    up_layer = np.array(upstream_layer)
    up_is_mlp = np.array([name.endswith(".mlp") for name in upstream])
    down_layer = np.array(downstream_layer)[:, None]
    reads_own_heads = np.array(reads_attention)[:, None]
    real = (up_layer[None, :] < down_layer) | ((up_layer[None, :] == down_layer) & reads_own_heads & ~up_is_mlp[None, :])
    return EdgeGraph(tuple(upstream), tuple(downstream), tuple(upstream_layer), tuple(downstream_layer),
                     tuple(downstream_node), tuple(downstream_heads), real)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# One forward pass over the graph: record every node's output, patch edges, keep inputs for gradients


@dataclasses.dataclass
class _GraphPass:
    """The hooks of one forward pass of ``rows`` rows (``groups`` groups of ``batch`` prompts)."""

    model: LoadedModel
    graph: EdgeGraph
    rows: int
    batch: int
    corrupted_out: torch.Tensor | None = None  # [n_up, batch, pos, d]: every node's output on the corrupted prompts
    corrupted_in: torch.Tensor | None = None  # [2 n_layers + 1, batch, pos, d]: each reading site's residual, corrupted
    keep: torch.Tensor | None = None  # [groups, n_down, n_up]: which edges keep their current value (1) in each group
    fraction: torch.Tensor | None = None  # [groups]: how far patched edges move toward corrupted (1 = all the way)
    keep_inputs: bool = False  # keep each downstream input's tensor, for gradients
    embed_override: Callable[[torch.Tensor], torch.Tensor] | None = None  # replaces the input embeddings

    def __post_init__(self) -> None:
        self.outputs: list[torch.Tensor] = []  # current outputs of the upstream nodes written so far
        self.inputs: list[tuple[list[int], torch.Tensor]] = []  # (downstream ids, their inputs) when keep_inputs
        # reading site -> the residual read there: 2 l = layer l's attention, 2 l + 1 its MLP, 2 n_layers the logits
        self.residual: dict[int, torch.Tensor] = {}
        info = self.model.info
        self.n_heads, self.n_kv = info.n_heads, info.n_kv_heads or info.n_heads
        self.first_down = [self.graph.downstream_layer.index(layer) for layer in range(info.n_layers + 1)]

    @property
    def patching(self) -> bool:
        return self.keep is not None

    def _rebuild(self, downstream: Sequence[int], residual: torch.Tensor, site: int) -> torch.Tensor:
        """Each downstream input's own copy of ``residual`` ``[rows, pos, d]``, edges patched: ``[len, rows, pos, d]``."""
        copies = residual.unsqueeze(0).expand(len(downstream), *residual.shape)
        if self.patching:
            n_up = len(self.outputs)
            difference = self.difference[:n_up]  # [n_up, groups, batch, pos, d]: what each node changed
            keep = self.keep[:, list(downstream), :n_up].to(difference.dtype)  # [groups, len, n_up]
            kept = torch.einsum("gvu,ugbpd->vgbpd", keep, difference).reshape(len(downstream), *residual.shape)
            prompt = torch.arange(self.rows, device=residual.device) % self.batch
            group = torch.arange(self.rows, device=residual.device) // self.batch
            corrupted = self.corrupted_in[site][prompt].unsqueeze(0)
            fraction = self.fraction[group].to(residual.dtype)[None, :, None, None]
            # patched = current - f * (current - (corrupted + kept changes)); f = 1 is the plain edge patch
            copies = copies - fraction * (copies - corrupted - kept)
        elif self.keep_inputs:
            copies = copies.clone()
        if self.keep_inputs and not copies.requires_grad:  # the interpolated embeddings are constants, not weights'
            copies.requires_grad_(True)
        if self.keep_inputs:
            self.inputs.append((list(downstream), copies))
        return copies

    def _record(self, output: torch.Tensor) -> None:
        if self.patching:  # kept as the change from the corrupted run, written once, in place (no re-stacking)
            u = len(self.outputs)
            if u == 0:
                groups = self.rows // self.batch
                self.difference = output.new_empty(len(self.graph.upstream), groups, self.batch, *output.shape[1:])
            grouped = output.view(-1, self.batch, *output.shape[1:])
            self.difference[u] = grouped - self.corrupted_out[u].to(output.dtype).unsqueeze(0)
        self.outputs.append(output)

    def hooks(self) -> list[tuple[str, Callable]]:
        model, graph = self.model, self.graph
        bridge = model.bridge
        weights = _attention_weights(model)
        hooks: list[tuple[str, Callable]] = []
        if self.embed_override is not None:
            hooks.append(("blocks.0.hook_resid_pre", lambda activation, hook: self.embed_override(activation)))
        for layer in range(model.info.n_layers):
            block = bridge.blocks[layer]
            first = self.first_down[layer]
            q_ids = list(range(first, first + self.n_heads))
            k_ids = list(range(q_ids[-1] + 1, q_ids[-1] + 1 + self.n_kv))
            v_ids = list(range(k_ids[-1] + 1, k_ids[-1] + 1 + self.n_kv))
            mlp_id = v_ids[-1] + 1
            norm1 = block.ln1._original_component
            hooks.append((f"blocks.{layer}.ln1.hook_in", self._residual_hook(layer)))
            for name, ids, which in (("hook_q", q_ids, "Q"), ("hook_k", k_ids, "K"), ("hook_v", v_ids, "V")):
                weight, bias = weights[f"W_{which}"][layer], weights[f"b_{which}"][layer]
                hooks.append((f"blocks.{layer}.attn.{name}", self._projection_hook(layer, ids, norm1, weight, bias)))
            hooks.append((f"blocks.{layer}.attn.hook_z", self._heads_hook(weights["W_O"][layer])))
            hooks.append((f"blocks.{layer}.ln2.hook_in", self._input_hook(mlp_id, 2 * layer + 1)))
            hooks.append((f"blocks.{layer}.hook_mlp_out", lambda activation, hook: self._record(activation)))
        hooks.append(("ln_final.hook_in", self._input_hook(len(graph.downstream) - 1, 2 * model.info.n_layers)))
        return hooks

    def _residual_hook(self, layer: int) -> Callable:
        def hook(activation: torch.Tensor, site: HookSite) -> None:
            self.residual[2 * layer] = activation
            if layer == 0:
                self._record(activation)  # the input node's output: the embeddings (with positions, if any)

        return hook

    def _projection_hook(self, layer, ids, norm, weight, bias) -> Callable:
        """Replace q, k or v ``[rows, pos, heads, d_head]`` by each head's projection of its own input."""

        def hook(activation: torch.Tensor, site: HookSite) -> torch.Tensor | None:
            if not (self.patching or self.keep_inputs):
                return None
            inputs = self._rebuild(ids, self.residual[2 * layer], 2 * layer)  # [heads, rows, pos, d]
            normed = norm(inputs)
            projected = torch.einsum("hrpd,hde->rphe", normed, weight.to(normed.dtype)) + bias.to(normed.dtype)
            return projected.to(activation.dtype)

        return hook

    def _heads_hook(self, w_out: torch.Tensor) -> Callable:
        def hook(activation: torch.Tensor, site: HookSite) -> None:
            per_head = torch.einsum("rphe,hed->hrpd", activation, w_out.to(activation.dtype))
            for output in per_head.unbind(0):
                self._record(output)

        return hook

    def _input_hook(self, v: int, site: int) -> Callable:
        """An MLP's input (the residual before its norm) or the logits' input (before the final norm)."""

        def hook(activation: torch.Tensor, hook_site: HookSite) -> torch.Tensor | None:
            self.residual[site] = activation
            if not (self.patching or self.keep_inputs):
                return None
            return self._rebuild([v], activation, site)[0]

        return hook


_weights_cache: dict[tuple[int, str, str], dict[str, torch.Tensor]] = {}
_weights_lock = threading.Lock()


def _attention_weights(model: LoadedModel) -> dict[str, torch.Tensor]:
    """Every layer's W_Q/K/V ``[layer, heads, d_model, d_head]``, W_O and biases, read once per model.

    The bridge's ``W_Q`` stacks every layer's weights on each access (0.1-0.2 s on SmolLM2), and a graph pass
    needs four per layer. The model is shared and its weights never change in place, so one copy serves all.
    """
    from interp.compression.variants import require_plain_weights

    require_plain_weights(model, "Edge circuits")
    key = (id(model), model.info.weights_sha256, model.info.dtype)
    with _weights_lock:
        if key not in _weights_cache:
            bridge = model.bridge
            with torch.no_grad():
                weights = {name: getattr(bridge, name).detach() for name in ("W_Q", "W_K", "W_V", "W_O")}
                for name in ("b_Q", "b_K", "b_V"):
                    try:
                        bias = getattr(bridge, name)
                    except (AttributeError, NotImplementedError):
                        bias = None
                    weights[name] = bias.detach() if bias is not None else torch.zeros(model.info.n_layers)
            _weights_cache.clear()  # one model at a time is in use; keep memory to one copy
            _weights_cache[key] = weights
        return _weights_cache[key]


@dataclasses.dataclass(frozen=True)
class _Reference:
    """What every score and patch compares against: both runs' node outputs, residuals and metrics."""

    clean_out: torch.Tensor  # [n_up, batch, pos, d]
    corrupted_out: torch.Tensor
    corrupted_in: torch.Tensor  # [2 n_layers + 1, batch, pos, d]: the residual at each reading site
    metric_clean: float
    metric_corrupted: float


def _reference(model: LoadedModel, graph: EdgeGraph, clean: torch.Tensor, corrupted: torch.Tensor, metric: Metric):
    runs = []
    for tokens in (clean, corrupted):
        graph_pass = _GraphPass(model, graph, tokens.shape[0], tokens.shape[0])
        with intervene(model, graph_pass.hooks()), torch.inference_mode():
            logits = model.bridge(tokens.to(model.device), logits_to_keep=metric.logits_to_keep())
        residual = torch.stack([graph_pass.residual[site] for site in range(2 * model.info.n_layers + 1)])
        runs.append((torch.stack(graph_pass.outputs), residual, float(metric(logits)[0])))
    (clean_out, _, metric_clean), (corrupted_out, corrupted_in, metric_corrupted) = runs
    return _Reference(clean_out, corrupted_out, corrupted_in, metric_clean, metric_corrupted)


# ---------------------------------------------------------------------------------------------
# Scores


@dataclasses.dataclass(frozen=True)
class EdgeScores:
    """Every edge's estimated effect: ``scores[v, u]`` ≈ metric with edge ``u -> v`` patched, minus the clean metric.

    In the metric's units (a logit difference in logits, a loss in nats). NaN where no edge exists.
    """

    graph: EdgeGraph
    scores: np.ndarray  # [n_down, n_up]
    method: str  # "eap" | "eap-ig"
    steps: int  # EAP-IG's m (1 for EAP)
    metric_label: str
    metric_unit: str
    metric_clean: float
    metric_corrupted: float
    seconds: float

    @property
    def edges_per_second(self) -> float:
        return self.graph.n_edges / self.seconds if self.seconds > 0 else float("inf")

    def ranked(self, k: int | None = None) -> list[tuple[str, float]]:
        """Edges by absolute score, largest first, as ``(label, score)``."""
        order = self.order()[: k if k is not None else None]
        return [(self.graph.edge_label(v, u), float(self.scores[v, u])) for v, u in order]

    def order(self) -> list[tuple[int, int]]:
        """Every edge ``(v, u)``, by absolute score, largest first (ties in graph order)."""
        edges = self.graph.all_edges()
        magnitude = np.array([abs(self.scores[v, u]) for v, u in edges])
        return [edges[i] for i in np.argsort(-magnitude, kind="stable")]

    def input_total(self) -> float:
        """The sum of the scores of the edges out of ``input`` (EAP-IG: → corrupted minus clean metric)."""
        column = self.scores[:, 0]
        return float(np.nansum(column))


def score_edges(
    model: LoadedModel,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: Metric,
    *,
    method: str = "eap-ig",
    steps: int = 5,
    rows_per_pass: int = 64,
    progress: Callable[[float], None] | None = None,
) -> EdgeScores:
    """Score every edge by EAP (one backward at the clean run) or EAP-IG (``steps`` backwards along the path).

    Args:
        clean, corrupted: ``[batch, pos]`` token ids of equal shape.
        metric: what the scores are in (e.g. the logit difference of the right and the wrong answer).
        steps: EAP-IG's number of interpolation points (ignored by EAP).
        rows_per_pass: at most this many rows (interpolation points x prompts) per forward/backward pass.
    """
    check_pair(clean, corrupted)
    if method not in EDGE_METHODS:
        raise InputError(f"Unknown edge method {method!r}; choose from {', '.join(EDGE_METHODS)}.")
    if method == "eap-ig" and not 1 <= steps <= 200:
        raise InputError(f"EAP-IG needs between 1 and 200 steps (got {steps}).")
    start = time.perf_counter()
    graph = edge_graph(model.info)
    reference = _reference(model, graph, clean, corrupted, metric)
    batch = clean.shape[0]
    alphas = [1.0] if method == "eap" else [(k + 0.5) / steps for k in range(steps)]  # from corrupted (0) to clean (1)
    gradients = torch.zeros(len(graph.downstream), *reference.clean_out.shape[1:], dtype=torch.float32)
    clean_embed, corrupted_embed = reference.clean_out[0], reference.corrupted_out[0]
    per_pass = max(1, rows_per_pass // batch)
    for begin in range(0, len(alphas), per_pass):
        chunk = torch.tensor(alphas[begin : begin + per_pass])
        rows = len(chunk) * batch
        alpha_rows = chunk.repeat_interleave(batch).to(clean_embed.dtype)[:, None, None]

        n_points = len(chunk)

        def interpolate(activation: torch.Tensor, alpha_rows=alpha_rows, n=n_points) -> torch.Tensor:
            mixed = corrupted_embed.repeat(n, 1, 1) + alpha_rows * (clean_embed - corrupted_embed).repeat(n, 1, 1)
            return mixed.to(activation.dtype)

        graph_pass = _GraphPass(model, graph, rows, batch, keep_inputs=True,
                                embed_override=None if method == "eap" else interpolate)  # fmt: skip
        with intervene(model, graph_pass.hooks()), torch.enable_grad():
            logits = model.bridge(clean.repeat(len(chunk), 1).to(model.device), logits_to_keep=metric.logits_to_keep())
            value = metric(logits).sum()  # one mean over prompts per interpolation point
            grads = torch.autograd.grad(value, [inputs for _, inputs in graph_pass.inputs], allow_unused=True)
        for (ids, _), grad in zip(graph_pass.inputs, grads, strict=True):
            if grad is not None:  # [len(ids), rows, pos, d] -> summed over the interpolation points of this pass
                gradients[ids] += grad.detach().float().view(len(ids), len(chunk), batch, *grad.shape[2:]).sum(1)
        if progress is not None:
            progress(min(1.0, (begin + len(chunk)) / len(alphas)))
    gradients /= len(alphas)
    delta = (reference.corrupted_out - reference.clean_out).float()  # [n_up, batch, pos, d]
    scores = torch.einsum("ubpd,vbpd->vu", delta, gradients).numpy().astype(np.float64)  # the metric is a mean already
    scores[~graph.real] = np.nan
    return EdgeScores(graph, scores, method, 1 if method == "eap" else steps, metric.label, metric.unit,
                      reference.metric_clean, reference.metric_corrupted, time.perf_counter() - start)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Real patching of edges


def edge_patched_metric(
    model: LoadedModel,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: Metric,
    keeps: Sequence[np.ndarray],
    *,
    fraction: float = 1.0,
    rows_per_pass: int = 32,
    reference: _Reference | None = None,
) -> np.ndarray:
    """The metric of the clean prompts with every edge *not* kept patched from the corrupted run, once per mask.

    Args:
        keeps: bool masks ``[n_down, n_up]`` (see :class:`EdgeGraph`); ``True`` keeps an edge's clean-run term.
            All edges kept is the clean model; none kept is the corrupted run.
        fraction: how far the patched edges move toward their corrupted value (1: all the way; small values
            measure the effect's slope, which EAP estimates).
    Returns:
        ``[len(keeps)]`` metric values.
    """
    check_pair(clean, corrupted)
    graph = edge_graph(model.info)
    reference = reference or _reference(model, graph, clean, corrupted, metric)
    batch = clean.shape[0]
    per_pass = max(1, rows_per_pass // batch)
    values = []
    for begin in range(0, len(keeps), per_pass):
        chunk = [np.asarray(keep, dtype=bool) & graph.real for keep in keeps[begin : begin + per_pass]]
        graph_pass = _GraphPass(model, graph, len(chunk) * batch, batch, reference.corrupted_out, reference.corrupted_in,
                                keep=torch.from_numpy(np.stack(chunk)), fraction=torch.full((len(chunk),), fraction))  # fmt: skip
        with intervene(model, graph_pass.hooks()), torch.inference_mode():
            logits = model.bridge(clean.repeat(len(chunk), 1).to(model.device), logits_to_keep=metric.logits_to_keep())
        values.append(metric(logits).float().cpu().numpy())
    return np.concatenate(values).astype(np.float64) if values else np.zeros(0)


def single_edge_keeps(graph: EdgeGraph, edges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """For each edge, the mask that patches it alone (every other edge kept)."""
    keeps = []
    for v, u in edges:
        keep = graph.real.copy()
        keep[v, u] = False
        keeps.append(keep)
    return keeps


def circuit_keep(graph: EdgeGraph, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    keep = np.zeros_like(graph.real)
    for v, u in edges:
        keep[v, u] = True
    return keep


# ---------------------------------------------------------------------------------------------
# Circuits: the top edges, pruned to what connects the input to the logits, and how faithful they are


@dataclasses.dataclass(frozen=True)
class EdgeCircuit:
    """A set of edges, pruned so every edge lies on a path from ``input`` to the ``logits``."""

    graph: EdgeGraph
    edges: tuple[tuple[int, int], ...]  # (v, u), by absolute score, largest first
    requested: int  # how many top edges were asked for (pruning may keep fewer)

    def labels(self) -> list[str]:
        return [self.graph.edge_label(v, u) for v, u in self.edges]

    def keep(self) -> np.ndarray:
        return circuit_keep(self.graph, self.edges)

    def nodes(self) -> list[str]:
        """The nodes the circuit's edges touch, upstream order first, then the logits."""
        touched = {self.graph.upstream[u] for _, u in self.edges} | {n for v, _ in self.edges for n in self.graph.feeds(v)}
        ordered = [name for name in self.graph.upstream if name in touched]
        return ordered + ([LOGITS] if LOGITS in touched else [])


def prune(graph: EdgeGraph, edges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The edges on some path from ``input`` to ``logits``.

    An edge out of a node none of whose inputs is kept carries nothing (the node's output then equals its
    corrupted value), and an edge into a node that reaches no logit changes nothing, so pruning never changes
    the circuit's faithfulness; it only leaves out what cannot matter.
    """
    edges = list(dict.fromkeys(edges))
    # forward: which upstream nodes carry a difference (the input, or a node with a kept, live incoming edge)
    live = {0}
    for index, name in enumerate(graph.upstream[1:], start=1):
        if any(u in live and name in graph.feeds(v) for v, u in edges):
            live.add(index)
    # backward: which nodes reach the logits through kept edges
    reaches = {LOGITS}
    for index in range(len(graph.upstream) - 1, 0, -1):
        if any(u == index and not reaches.isdisjoint(graph.feeds(v)) for v, u in edges):
            reaches.add(graph.upstream[index])
    return [(v, u) for v, u in edges if u in live and not reaches.isdisjoint(graph.feeds(v))]


def top_circuit(scores: EdgeScores, n: int | None = None, *, threshold: float | None = None) -> EdgeCircuit:
    """The ``n`` edges of largest absolute score, or every edge with ``|score| >= threshold``, then pruned."""
    order = scores.order()
    if threshold is not None:
        chosen = [(v, u) for v, u in order if abs(scores.scores[v, u]) >= threshold]
    elif n is not None:
        if n < 0:
            raise InputError(f"A circuit needs a number of edges of 0 or more (got {n}).")
        chosen = order[:n]
    else:
        raise InputError("Choose the circuit by a number of edges or by a score threshold.")
    return EdgeCircuit(scores.graph, tuple(prune(scores.graph, chosen)), len(chosen))


MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # MIB's circuit sizes, of all edges


@dataclasses.dataclass(frozen=True)
class FaithfulnessCurve:
    """Faithfulness over circuit sizes: ``(metric(circuit) - metric(corrupted)) / (metric(clean) - metric(corrupted))``.

    1 = the circuit alone does what the whole model does; 0 = no better than the corrupted run. ``random`` is
    the same for circuits of as many edges drawn at random (``random_repeats`` each; mean and spread).
    """

    method: str
    sizes: tuple[int, ...]  # edges requested at each point
    kept: tuple[int, ...]  # edges after pruning
    fractions: tuple[float, ...]  # sizes / all edges
    faithfulness: tuple[float, ...]
    random_mean: tuple[float, ...]
    random_low: tuple[float, ...]  # the smallest and largest of the random circuits
    random_high: tuple[float, ...]
    random_repeats: int
    n_edges: int
    metric_label: str
    metric_clean: float
    metric_corrupted: float
    seconds: float

    @property
    def cpr(self) -> float:
        """MIB's circuit performance ratio: the area under the curve over the fraction of edges (higher is better)."""
        return _area(self.fractions, self.faithfulness)

    @property
    def cmd(self) -> float:
        """MIB's circuit-model distance: the area between the curve and 1 (lower is better)."""
        return _area(self.fractions, [abs(1.0 - f) for f in self.faithfulness])

    @property
    def random_cpr(self) -> float:
        return _area(self.fractions, self.random_mean)

    @property
    def random_cmd(self) -> float:
        return _area(self.fractions, [abs(1.0 - f) for f in self.random_mean])

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"edges": self.sizes, "edges after pruning": self.kept, "fraction of edges": self.fractions,
                             "faithfulness": self.faithfulness, "random (mean)": self.random_mean})  # fmt: skip


def _area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area over the fraction of edges, from the empty circuit (0, faithfulness 0) to the full one."""
    x = np.concatenate([[0.0], np.asarray(fractions, dtype=float)])
    y = np.concatenate([[0.0], np.asarray(values, dtype=float)])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def curve_sizes(n_edges: int, fractions: Sequence[float] = MIB_FRACTIONS) -> list[int]:
    """Circuit sizes for a curve: MIB's fractions of the edges, and 1, 2, 5, 10, ... for small graphs, deduplicated."""
    small = [s for s in (1, 2, 3, 5, 10, 20, 50) if s < n_edges]
    return sorted({*small, *(max(1, round(f * n_edges)) for f in fractions)})


def faithfulness_curve(
    model: LoadedModel,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    metric: Metric,
    scores: EdgeScores,
    *,
    sizes: Sequence[int] | None = None,
    random_repeats: int = 3,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> FaithfulnessCurve:
    """Faithfulness of the top-``n`` circuit for each size, beside circuits of as many random edges."""
    start = time.perf_counter()
    graph = scores.graph
    reference = _reference(model, graph, clean, corrupted, metric)
    gap = reference.metric_clean - reference.metric_corrupted
    if abs(gap) < 1e-9:
        raise InputError("The clean and corrupted prompts give the same metric: there is no behaviour to find a "
                         "circuit for. Choose a corrupted prompt that changes the answer.")  # fmt: skip
    sizes = list(sizes) if sizes is not None else curve_sizes(graph.n_edges)
    circuits = [top_circuit(scores, n) for n in sizes]
    rng = np.random.default_rng(seed)
    every = graph.all_edges()
    randoms = [[prune(graph, [every[i] for i in rng.choice(len(every), size=n, replace=False)])
                for _ in range(random_repeats)] for n in sizes]  # fmt: skip
    keeps = [c.keep() for c in circuits] + [circuit_keep(graph, edges) for group in randoms for edges in group]
    values = []
    for begin in range(0, len(keeps), 8):
        values.append(edge_patched_metric(model, clean, corrupted, metric, keeps[begin : begin + 8], reference=reference))
        if progress is not None:
            progress(min(1.0, (begin + 8) / len(keeps)))
    faithful = (np.concatenate(values) - reference.metric_corrupted) / gap
    top, random = faithful[: len(sizes)], faithful[len(sizes) :].reshape(len(sizes), random_repeats)
    return FaithfulnessCurve(
        scores.method, tuple(sizes), tuple(len(c.edges) for c in circuits), tuple(n / graph.n_edges for n in sizes),
        tuple(float(f) for f in top), tuple(float(f) for f in random.mean(1)), tuple(float(f) for f in random.min(1)),
        tuple(float(f) for f in random.max(1)), random_repeats, graph.n_edges, metric.label, reference.metric_clean,
        reference.metric_corrupted, time.perf_counter() - start,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class EdgeCheck:
    """An edge's estimated effect beside its real one (the edge alone patched from the corrupted run)."""

    edge: str
    estimate: float  # in the metric's units
    patched: float

    @property
    def error(self) -> float:
        return self.estimate - self.patched


def verify_edges(
    model: LoadedModel, clean: torch.Tensor, corrupted: torch.Tensor, metric: Metric, scores: EdgeScores,
    edges: Sequence[str | tuple[int, int]],
) -> list[EdgeCheck]:  # fmt: skip
    """Really patch each edge alone (path patching of that edge) and set it beside its estimate."""
    graph = scores.graph
    indices = [graph.edge_index(e) if isinstance(e, str) else e for e in edges]
    reference = _reference(model, graph, clean, corrupted, metric)
    patched = edge_patched_metric(model, clean, corrupted, metric, single_edge_keeps(graph, indices), reference=reference)
    return [EdgeCheck(graph.edge_label(v, u), float(scores.scores[v, u]), float(p - reference.metric_clean))
            for (v, u), p in zip(indices, patched, strict=True)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The runs


@dataclasses.dataclass(frozen=True)
class EdgeCircuitResult:
    """Every edge's score, the faithfulness curve of the top-n circuits, and the top edges really patched."""

    scores: EdgeScores
    curve: FaithfulnessCurve
    checks: tuple[EdgeCheck, ...]


@dataclasses.dataclass(frozen=True)
class EdgeCircuitRun(RunSpec):
    """Score every edge of one task (EAP or EAP-IG), measure the faithfulness curve, really patch the top edges."""

    kind: ClassVar[str] = "edge_circuit"
    title: ClassVar[str] = "Edge circuit"
    tolerance: ClassVar[float] = 1e-4  # gradients summed in another order on replay may differ in the last bits
    mirrors = (score_edges, faithfulness_curve)

    task: CircuitTask
    method: EdgeMethod = default_of(score_edges, "method")
    steps: int = default_of(score_edges, "steps")
    random_repeats: int = default_of(faithfulness_curve, "random_repeats")
    verify: int = 5  # how many of the top edges are really patched beside their estimate

    def __post_init__(self) -> None:
        check_choice("edge method", self.method, EDGE_METHODS)
        if not 1 <= self.steps <= 200:
            raise InputError(f"EAP-IG needs between 1 and 200 steps (got {self.steps}).")
        if not 0 <= self.random_repeats <= 20 or not 0 <= self.verify <= 50:
            raise InputError("Choose 0-20 random circuits per size and 0-50 edges to verify.")

    def run(self, model: LoadedModel, progress: Progress | None = None) -> EdgeCircuitResult:
        task = self.task.build(model)
        clean, corrupted, metric = task.clean, task.corrupted, task.metric
        say = progress or (lambda fraction, message: None)
        steps = "1 gradient" if self.method == "eap" else f"{self.steps} gradients"
        scores = score_edges(model, clean, corrupted, metric, method=self.method, steps=self.steps,
                             progress=lambda f: say(0.4 * f, f"Scoring every edge ({steps}): {100 * f:.0f}%"))  # fmt: skip
        curve = faithfulness_curve(
            model, clean, corrupted, metric, scores, random_repeats=max(1, self.random_repeats),
            progress=lambda f: say(0.4 + 0.5 * f, f"Faithfulness curve: {100 * f:.0f}% of circuits"),
        )  # fmt: skip
        say(0.92, f"Patching the top {self.verify} edges one at a time")
        checks = verify_edges(model, clean, corrupted, metric, scores, scores.order()[: self.verify])
        return EdgeCircuitResult(scores, curve, tuple(checks))


@dataclasses.dataclass(frozen=True)
class EdgePatchRun(RunSpec):
    """Really patch chosen edges, one at a time (path patching of each edge), beside its estimate."""

    kind: ClassVar[str] = "edge_patch"
    title: ClassVar[str] = "Edge patching"
    mirrors = (score_edges,)

    task: CircuitTask
    edges: tuple[str, ...]  # "L0.H1 -> L1.H2.k"
    method: EdgeMethod = default_of(score_edges, "method")
    steps: int = default_of(score_edges, "steps")
    tolerance: ClassVar[float] = 1e-4

    def __post_init__(self) -> None:
        check_choice("edge method", self.method, EDGE_METHODS)
        if not self.edges:
            raise InputError("Choose at least one edge to patch.")

    def run(self, model: LoadedModel, progress: Progress | None = None) -> tuple[EdgeCheck, ...]:
        task = self.task.build(model)
        graph = edge_graph(model.info)
        indices = [graph.edge_index(edge) for edge in self.edges]  # a bad label fails before any work
        scores = score_edges(model, task.clean, task.corrupted, task.metric, method=self.method, steps=self.steps)
        return tuple(verify_edges(model, task.clean, task.corrupted, task.metric, scores, indices))


def circuit_document(circuit: EdgeCircuit, scores: EdgeScores, checks: Sequence[EdgeCheck] = ()) -> dict:
    """The circuit as plain JSON-able data: its nodes (with importance), edges (with scores) and how it was found."""
    graph = circuit.graph
    patched = {check.edge: check.patched for check in checks}
    importance: dict[str, float] = {}
    edges = []
    for v, u in circuit.edges:
        score = float(scores.scores[v, u])
        label = graph.edge_label(v, u)
        for name in (graph.upstream[u], *graph.feeds(v)):
            importance[name] = importance.get(name, 0.0) + abs(score)
        edges.append({"edge": label, "source": graph.upstream[u], "target_input": graph.downstream[v],
                      "target_nodes": list(graph.feeds(v)), "score": score, "patched": patched.get(label)})  # fmt: skip
    nodes = [{"node": name, "importance": importance.get(name, 0.0)} for name in circuit.nodes()]
    return {
        "method": scores.method, "steps": scores.steps, "metric": scores.metric_label, "unit": scores.metric_unit,
        "metric_clean": scores.metric_clean, "metric_corrupted": scores.metric_corrupted,
        "edges_in_graph": graph.n_edges, "edges_requested": circuit.requested,
        "score_meaning": "estimated metric with this edge alone patched from the corrupted run, minus the clean metric",
        "nodes": nodes, "edges": edges,
    }  # fmt: skip
