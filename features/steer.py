"""Steering with a feature: add its decoder direction, or clamp its activation, scored like any steering vector.

* **Add**: the feature's unit decoder direction becomes a one-layer :class:`steering.SteeringVector` at the SAE's
  hook point, so it runs through the same steer path as every vector (the engine's per-request additions, the
  sweeps, export) and gets the same behaviour and damage scores (perplexity, distinct-2, KL).
* **Clamp**: at every position the feature's activation is set to ``value`` by moving ``x`` along the direction,
  ``x + (value − z_i(x))·d_i`` (Templeton et al. 2024). Tokens where the feature is already at ``value`` are left
  alone; a clamp to 0 ablates it.
* **Feature vs mean difference** (the AxBench question, Wu et al. 2025: do SAE features steer as well as DiffMean?):
  both directions at unit norm, swept over the same added norms on the same prompts and seeds, with their cosine.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import torch

from features.activations import SKIPPED_POSITIONS
from features.sae import SparseAutoencoder
from interp.errors import InputError
from interp.hooks import HookSite
from interp.loading import LoadedModel
from interp.validation import check_finite
from steering import NEUTRAL_PROMPTS, SteeringVector
from steering.sweep import Evaluation, SweepResult, sample_prompts, score_texts, sweep

_HOOK_POINTS = {"hook_resid_pre": "resid_pre", "hook_resid_post": "resid_post", "hook_resid_mid": "resid_mid"}


def feature_vector(model: LoadedModel, sae: SparseAutoencoder, latent: int, label: str = "") -> SteeringVector:
    """Feature ``latent``'s unit decoder direction as a one-layer steering vector at the SAE's hook point."""
    point = sae.hook_name.split(".")[-1]
    if point not in _HOOK_POINTS:
        raise InputError(f"Only SAEs on the residual stream steer; this one reads {sae.hook_name}.")
    direction = sae.direction(latent)
    return SteeringVector(
        layers=(sae.layer,),
        directions=(direction / direction.norm()).reshape(1, -1),
        hook_point=_HOOK_POINTS[point],
        model_name=model.info.name,
        d_model=model.info.d_model,
        weights_sha256=model.info.weights_sha256,
        method="sae_feature",
        source=f"SAE feature {latent}" + (f" ({label})" if label else "") + f" of {sae.describe()}",
    )


def clamp_hook(sae: SparseAutoencoder, latent: int, value: float) -> Callable[[torch.Tensor, HookSite], torch.Tensor]:
    """A hook that sets feature ``latent`` to ``value`` on every position after the attention sink."""
    check_finite("clamp value", value, low=0.0)
    direction = sae.direction(latent)

    def clamp(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
        x = activation.float()
        now = sae.encode(x)[..., latent]  # [batch, pos]
        # the reconstruction with z_i = value instead of z_i = now differs by (value - now)·W_dec[i]
        shifted = x + (value - now)[..., None] * direction
        start = max(0, SKIPPED_POSITIONS - site.position_offset)
        out = activation.clone()
        out[:, start:] = shifted[:, start:].to(activation.dtype)
        return out

    return clamp


def evaluate_clamp(
    model: LoadedModel,
    sae: SparseAutoencoder,
    latent: int,
    value: float,
    scorer,
    *,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    seed: int = 0,
) -> Evaluation:
    """Clamped vs unclamped samples of ``prompts`` (same seeds), scored like :func:`steering.sweep.evaluate`."""
    start = time.perf_counter()
    options = {"n_samples": n_samples, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    unsteered = score_texts(model, sample_prompts(model, prompts, None, **options), scorer, kl_hooks=())
    hooks = [(sae.hook_name, clamp_hook(sae, latent, value))]
    steered = score_texts(model, sample_prompts(model, prompts, hooks, **options), scorer, kl_hooks=hooks)
    return Evaluation(sae.layer, float(value), tuple(prompts), unsteered, steered, scorer.name, time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class FeatureVsVector:
    """A feature and a mean-difference vector for the same concept, swept over the same added norms."""

    latent: int
    cosine: float  # between the feature's decoder direction and the vector at the SAE's layer
    added_norms: tuple[float, ...]
    feature: SweepResult
    vector: SweepResult


def compare_with_vector(
    model: LoadedModel,
    sae: SparseAutoencoder,
    latent: int,
    vector: SteeringVector,
    scorer,
    *,
    added_norms: Sequence[float] = (16.0, 32.0, 48.0),  # residual norm at SmolLM2 layer 9 is ~130
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    goal: str = "raise",
    seed: int = 0,
) -> FeatureVsVector:
    """Feature ``latent`` and ``vector`` (both at unit norm, at the SAE's layer) swept over ``added_norms``."""
    layer = sae.layer
    if layer not in vector.layers:
        raise InputError(f"The vector has no direction at the SAE's layer {layer}; make it there to compare.")
    if vector.hook_point != feature_vector(model, sae, latent).hook_point:
        raise InputError(f"The vector steers at {vector.hook_point}, the SAE reads {sae.hook_name}; compare at one point.")
    unit_vector = vector.at_layers([layer]).normalised()
    feature = feature_vector(model, sae, latent)
    cosine = float(torch.nn.functional.cosine_similarity(feature.direction(layer), unit_vector.direction(layer), dim=0))
    options = dict(layers=[layer], coefficients=list(added_norms), prompts=prompts, n_samples=n_samples,
                   max_new_tokens=max_new_tokens, goal=goal, seed=seed)  # fmt: skip
    return FeatureVsVector(
        latent,
        cosine,
        tuple(float(n) for n in added_norms),
        sweep(model, feature, scorer, **options),
        sweep(model, unit_vector, scorer, **options),
    )
