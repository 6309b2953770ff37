"""Which features drive a prediction: attribution patching on SAE latents, checked by really ablating them.

The SAE is spliced in *with its error term*: at the hook the activation ``x`` becomes ``decode(z) + (x − decode(z))``
with ``z = encode(x)`` a leaf of the autograd graph, so the forward pass is unchanged and the gradient of the
metric reaches every latent at every position in one backward pass. A latent's attribution is ``Σ_pos z · ∂m/∂z``:
the first-order estimate of how much the metric falls if the latent is set to zero everywhere (Marks et al. 2024,
"Sparse Feature Circuits"; Syed et al. 2023 for attribution patching). The estimate is linear and can be wrong, so
the strongest ones are also ablated for real — ``z_i = 0`` at every position, the error term kept — and both numbers
are shown side by side.

The metric is the log-probability of the target token at the last position (nats).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from features.activations import SKIPPED_POSITIONS
from features.sae import SparseAutoencoder
from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel
from interp.tokens import check_length, single_token_id, token_label, tokenize


@dataclasses.dataclass(frozen=True)
class FeatureEffect:
    latent: int
    attribution: float  # estimated drop of the metric when the latent is zeroed (nats); positive: it supports the target
    ablated_drop: float | None  # the real drop of the metric when zeroed (nats), for the verified ones
    activation: float  # summed over the prompt's positions


@dataclasses.dataclass(frozen=True)
class FeatureAttribution:
    prompt_tokens: tuple[str, ...]
    target: str
    target_id: int
    log_prob: float  # the clean metric, nats
    effects: tuple[FeatureEffect, ...]  # strongest |attribution| first, active latents only


def _metric(logits: torch.Tensor, target_id: int) -> torch.Tensor:
    return torch.log_softmax(logits[0, -1].float(), dim=-1)[target_id]


def _splice(sae: SparseAutoencoder, store: dict, zeroed: Sequence[int] = ()):
    """A hook: ``decode(z) + error`` with ``z`` kept (and, when ``zeroed``, those latents set to 0)."""

    def hook(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
        x = activation[0].float()  # [pos, d_in], one prompt
        code = sae.encode(x).detach()
        code[:SKIPPED_POSITIONS] = 0  # the sink is never encoded (it is left as it is by the error term)
        error = (x - sae.decode(code)).detach()
        code.requires_grad_(True)
        store["code"] = code
        used = code
        if zeroed:
            keep = torch.ones(sae.d_sae)
            keep[list(zeroed)] = 0
            used = code * keep
        return (sae.decode(used) + error).to(activation.dtype)[None]

    return hook


def metric_with_latents_zeroed(
    model: LoadedModel, sae: SparseAutoencoder, ids: torch.Tensor, target_id: int, latents: Sequence[int]
) -> float:
    """The target's log-probability with ``latents`` set to zero at every position (the error term kept)."""
    store: dict = {}
    with intervene(model, [(sae.hook_name, _splice(sae, store, latents))]), torch.no_grad():
        return float(_metric(model.bridge(ids.to(model.device)), target_id))


def feature_attribution(
    model: LoadedModel, sae: SparseAutoencoder, prompt: str, target: str | int, *, top: int = 10, verify: int = 5
) -> FeatureAttribution:
    """The features that drive ``target`` as the next token after ``prompt``; the ``verify`` strongest ablated for real."""
    ids = torch.tensor([tokenize(model, prompt)])
    check_length(model, ids.shape[1])
    if ids.shape[1] <= SKIPPED_POSITIONS:
        raise InputError("The prompt needs at least two tokens: the first one (the attention sink) is not encoded.")
    target_id = int(target) if isinstance(target, int) else single_token_id(model, target)
    store: dict = {}
    with intervene(model, [(sae.hook_name, _splice(sae, store))]), torch.enable_grad():
        value = _metric(model.bridge(ids.to(model.device)), target_id)
        (gradient,) = torch.autograd.grad(value, [store["code"]])
    code = store["code"].detach()
    attribution = (code * gradient).sum(dim=0)  # [d_sae]
    activation = code.sum(dim=0)
    active = torch.nonzero(activation > 0).flatten()
    order = active[attribution[active].abs().argsort(descending=True)][:top].tolist()
    clean = float(value.detach())
    effects = []
    for rank, latent in enumerate(order):
        real = clean - metric_with_latents_zeroed(model, sae, ids, target_id, [latent]) if rank < verify else None
        effects.append(FeatureEffect(latent, float(attribution[latent]), real, float(activation[latent])))
    return FeatureAttribution(
        prompt_tokens=tuple(token_label(model.tokenizer, int(i)) for i in ids[0]),
        target=token_label(model.tokenizer, target_id),
        target_id=target_id,
        log_prob=clean,
        effects=tuple(effects),
    )
