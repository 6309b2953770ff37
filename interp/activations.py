"""Record activations at named hook points during one forward pass.

Only the hook points asked for are recorded (not a full activation cache), so recording every
layer's attention pattern costs one forward pass plus the patterns' memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel


@dataclasses.dataclass(frozen=True)
class Recording:
    """Logits and the recorded activations of one forward pass (detached, on the model's device)."""

    logits: torch.Tensor  # [batch, pos, d_vocab]
    activations: dict[str, torch.Tensor]

    def stack(self, names: Sequence[str]) -> torch.Tensor:
        """The activations of ``names`` stacked on a new leading axis (e.g. one row per layer)."""
        return torch.stack([self.activations[name] for name in names])


def record(model: LoadedModel, token_ids: torch.Tensor, names: Sequence[str], *, logits_to_keep: int = 0) -> Recording:
    """Run ``token_ids`` ``[batch, pos]`` once and keep the activations at ``names``.

    ``logits_to_keep`` > 0 keeps only the last positions' logits (the unembedding of the rest is skipped).
    """
    captured: dict[str, torch.Tensor] = {}

    def keep(activation: torch.Tensor, site: HookSite) -> None:
        captured[site.name] = activation.detach().clone()

    with intervene(model, [(name, keep) for name in names]), torch.inference_mode():
        logits = model.bridge(token_ids.to(model.device), **({"logits_to_keep": logits_to_keep} if logits_to_keep else {}))
    return Recording(logits=logits, activations=captured)


def decode_residual(model: LoadedModel, residual: torch.Tensor) -> torch.Tensor:
    """Logits from residual-stream vectors ``[..., d_model]``: the final norm, then the unembedding.

    This is what the model itself does after its last block, so applied to the last block's output
    it reproduces the model's logits exactly.
    """
    with intervene(model), torch.inference_mode():
        return model.bridge.unembed(model.bridge.ln_final(residual.to(model.device)))
