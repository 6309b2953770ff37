"""A sparse autoencoder (SAE) on one hook point of the residual stream, as a small value.

An SAE rewrites an activation ``x`` (``[..., d_in]``) as a sparse, non-negative code ``z`` (``[..., d_sae]``, most
entries zero) and a reconstruction ``x̂ = z @ W_dec + b_dec``. Each latent's decoder row is a direction in the
residual stream, a *feature*; how strongly it fires on a token says how much of that direction the token carries.
The encoder here is the one every current format shares::

    pre = (x − b_dec·[subtract_decoder_bias]) @ W_encᵀ + b_enc      # [..., d_sae]
    z   = topk(relu(pre), k)        TopK (Gao et al. 2024; EleutherAI's sparsify, SAELens "topk")
        = relu(pre)                 ReLU ("standard" in SAELens)
        = pre · [pre > threshold]   JumpReLU (Gemma Scope; SAELens "jumprelu")

Trust the code only as far as the SAE's quality figures (:mod:`features.quality`) allow: a latent of an SAE with a
high fraction of variance unexplained, or one that rarely fires, says less than a good SAE's.

Weights are kept in float32 for computation whatever they were stored in (the shipped SAE is stored as float16).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

import torch

from interp.errors import InputError

Activation = Literal["topk", "relu", "jumprelu"]
ACTIVATIONS: tuple[str, ...] = ("topk", "relu", "jumprelu")
_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|resid_mid|mlp_out|attn_out)$")


def hook_layer(hook_name: str) -> int:
    """The block a hook point such as ``blocks.6.hook_resid_post`` belongs to (an InputError for any other name)."""
    match = _HOOK.match(hook_name)
    if match is None:
        raise InputError(
            f"The SAE's hook point {hook_name!r} is not one Steerscope reads; use blocks.L.hook_resid_post, "
            "blocks.L.hook_resid_pre, blocks.L.hook_mlp_out or blocks.L.hook_attn_out."
        )
    return int(match.group(1))


@dataclasses.dataclass(frozen=True, eq=False)
class SparseAutoencoder:
    """Weights and encoding rule of one SAE; ``encode``/``decode`` work on any leading shape."""

    encoder_weight: torch.Tensor  # [d_sae, d_in]  (sparsify's encoder.weight; SAELens's W_enc transposed)
    encoder_bias: torch.Tensor  # [d_sae]
    decoder_weight: torch.Tensor  # [d_sae, d_in]  (W_dec: row i is latent i's direction)
    decoder_bias: torch.Tensor  # [d_in]
    hook_name: str  # where it reads and writes, e.g. "blocks.6.hook_resid_post"
    activation: Activation = "topk"
    k: int = 0  # TopK's number of active latents per token (0 for the other activations)
    threshold: torch.Tensor | None = None  # [d_sae], JumpReLU only
    subtract_decoder_bias: bool = True  # sparsify always; SAELens's apply_b_dec_to_input
    source: str = "steerscope"  # "steerscope", "sparsify" or "saelens": the format it came from

    def __post_init__(self) -> None:
        d_sae, d_in = self.decoder_weight.shape
        shapes = {
            "encoder weight": (self.encoder_weight.shape, (d_sae, d_in)),
            "encoder bias": (self.encoder_bias.shape, (d_sae,)),
            "decoder bias": (self.decoder_bias.shape, (d_in,)),
        }
        if self.threshold is not None:
            shapes["threshold"] = (self.threshold.shape, (d_sae,))
        for name, (shape, expected) in shapes.items():
            if tuple(shape) != expected:
                raise InputError(
                    f"The SAE's {name} has shape {list(shape)}, but its decoder ({d_sae} latents × {d_in}) needs "
                    f"{list(expected)}."
                )
        tensors = [self.encoder_weight, self.encoder_bias, self.decoder_weight, self.decoder_bias]
        if any(not bool(torch.isfinite(t).all()) for t in tensors + ([self.threshold] if self.threshold is not None else [])):
            raise InputError("The SAE's weights contain NaN or infinite values; it cannot be used.")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"Unknown SAE activation {self.activation!r}; Steerscope reads {', '.join(ACTIVATIONS)}.")
        if self.activation == "topk" and not 1 <= self.k <= d_sae:
            raise InputError(f"A TopK SAE needs 1 ≤ k ≤ {d_sae} (its number of latents); it says k = {self.k}.")
        if self.activation == "jumprelu" and self.threshold is None:
            raise InputError("A JumpReLU SAE needs its threshold tensor.")
        hook_layer(self.hook_name)
        for name in ("encoder_weight", "encoder_bias", "decoder_weight", "decoder_bias", "threshold"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.detach().float().contiguous())

    @property
    def d_in(self) -> int:
        return self.decoder_weight.shape[1]

    @property
    def d_sae(self) -> int:
        return self.decoder_weight.shape[0]

    @property
    def layer(self) -> int:
        return hook_layer(self.hook_name)

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` → ``[..., d_sae]`` before the sparsifying nonlinearity."""
        x = x.float()
        if self.subtract_decoder_bias:
            x = x - self.decoder_bias
        return x @ self.encoder_weight.T + self.encoder_bias

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The sparse code ``[..., d_sae]`` (dense tensor, zeros where a latent is off)."""
        return self.activate(self.pre_activations(x))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(pre)
        if self.activation == "jumprelu":
            return pre * (pre > self.threshold)
        top = torch.topk(pre, self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """``[..., d_sae]`` → ``[..., d_in]``."""
        return code @ self.decoder_weight + self.decoder_bias

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def direction(self, latent: int) -> torch.Tensor:
        """Latent ``latent``'s decoder direction ``[d_in]`` (unit norm for SAEs trained here and in sparsify)."""
        if not 0 <= latent < self.d_sae:
            raise InputError(f"Feature {latent} does not exist; this SAE has features 0 to {self.d_sae - 1}.")
        return self.decoder_weight[latent]

    def describe(self) -> str:
        rule = f"TopK, k = {self.k}" if self.activation == "topk" else self.activation
        return f"{self.d_sae} features on {self.hook_name} ({rule}, from {self.source})"
