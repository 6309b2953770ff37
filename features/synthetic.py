"""Activations with a known answer: sums of a few planted sparse directions, for testing that a trainer finds them.

Each token is ``Σ aᵢ dᵢ`` over a handful of directions drawn from ``n_directions`` random unit vectors in ``d``
dimensions (more directions than dimensions, as superposition supposes), with positive magnitudes. A good SAE of
width ``n_directions`` and ``k`` near the number active per token recovers each planted direction as one of its
decoder rows; :func:`recovered_fraction` counts those with cosine ≥ 0.9 to some row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from features.sae import SparseAutoencoder


@dataclasses.dataclass(frozen=True)
class PlantedFeatures:
    """The planted directions and how tokens are made from them."""

    directions: torch.Tensor  # [n_directions, d], unit rows
    active_per_token: int
    seed: int

    def batches(self, n_tokens: int, batch_size: int) -> Iterator[torch.Tensor]:
        """``[batch_size, d]`` batches, ``n_tokens`` in all (each token: ``active_per_token`` directions, magnitudes
        uniform in 0.5…1.5)."""
        generator = torch.Generator().manual_seed(self.seed + 1)
        n = self.directions.shape[0]
        made = 0
        while made < n_tokens:
            size = min(batch_size, n_tokens - made)
            chosen = torch.rand(size, n, generator=generator).argsort(dim=1)[:, : self.active_per_token]
            magnitudes = 0.5 + torch.rand(size, self.active_per_token, generator=generator)
            yield torch.einsum("tk,tkd->td", magnitudes, self.directions[chosen])
            made += size


def planted_features(n_directions: int, d: int, active_per_token: int, seed: int = 0) -> PlantedFeatures:
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_directions, d, generator=generator)
    return PlantedFeatures(directions / directions.norm(dim=1, keepdim=True), active_per_token, seed)


def recovered_fraction(planted: PlantedFeatures, sae: SparseAutoencoder, threshold: float = 0.9) -> float:
    """The fraction of planted directions with a decoder row at cosine ≥ ``threshold``."""
    rows = sae.decoder_weight / sae.decoder_weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = (planted.directions @ rows.T).max(dim=1).values
    return float((best >= threshold).float().mean())
