"""Direct logit attribution: which components wrote the answer into the final residual stream?

It splits the final residual stream into the outputs that wrote it (embeddings, every head, every MLP)
and reads each through the frozen final norm and the unembedding. It measures *direct* effects only: a
head that matters by steering later heads shows up in patching, not here. The parts sum to the metric
(a logit difference, or the answer's logit), which the tests check on RMSNorm and LayerNorm models.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from interp.activations import record
from interp.circuits.metric import Metric
from interp.circuits.tasks import CircuitTask
from interp.components import Component, head_label
from interp.errors import InputError
from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec

NEEDS_A_LOGIT = "Direct logit attribution explains a logit at one position; choose a logit-difference or answer metric."


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
        """The ``k`` largest direct effects by size, as ``(component label, contribution)``."""
        entries = [(head_label(layer, head), float(v)) for (layer, head), v in np.ndenumerate(self.heads)]
        entries += [(Component("mlp_out", layer).label, float(v)) for layer, v in enumerate(self.mlps)]
        entries.append(("embeddings", self.embeddings))
        return sorted(entries, key=lambda e: -abs(e[1]))[:k]


def direct_logit_attribution(model: LoadedModel, tokens: torch.Tensor, metric: Metric) -> DirectLogitAttribution:
    """Split a logit-difference (or answer-logit) metric over the components that wrote the residual stream.

    Averaged over the prompts of ``tokens``. For a log-probability metric the answer's *logit* is
    attributed (the softmax normaliser is not a sum of components).
    """
    if metric.kind == "repeated_loss":
        raise InputError(NEEDS_A_LOGIT)
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


@dataclasses.dataclass(frozen=True)
class DirectLogitAttributionRun(RunSpec):
    """Direct logit attribution of one task's clean prompts (at the last position, averaged over them)."""

    kind: ClassVar[str] = "direct_logit_attribution"
    title: ClassVar[str] = "Direct logit attribution"
    mirrors = (direct_logit_attribution,)

    task: CircuitTask

    def __post_init__(self) -> None:
        if self.task.metric_kind == "repeated_loss":
            raise InputError(NEEDS_A_LOGIT)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> DirectLogitAttribution:
        task = self.task.build(model)
        return direct_logit_attribution(model, task.clean, task.metric)
