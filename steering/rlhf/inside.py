"""The inside view: how much DPO fine-tuning moved each layer's residual stream, and along which direction.

Does fine-tuning find the steering vector? For the same (prompt, reply) texts, the tuned model's
mean residual stream minus the base model's is compared, layer by layer, with the steering direction
for the same trait: a cosine near 1 says DPO moved the model the way the vector would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from interp.loading import LoadedModel
from steering.rlhf.reward_model import response_features


@dataclasses.dataclass(frozen=True)
class InsideView:
    """Per layer: how far the tuned model's residual stream moved, and how aligned with the steering direction."""

    layers: tuple[int, ...]
    relative_change: np.ndarray  # mean |h_tuned - h_base| / mean |h_base|
    cosine_with_steering: np.ndarray  # cos(mean(h_tuned - h_base), steering direction)


def inside_view(
    base: LoadedModel,
    tuned: LoadedModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    steering_directions: dict[int, torch.Tensor],
) -> InsideView:
    """Compare the residual streams of the base and tuned models on the same (prompt, response) texts."""
    layers = tuple(range(base.info.n_layers))
    h_base = response_features(base, prompts, responses, layers)
    h_tuned = response_features(tuned, prompts, responses, layers)
    delta = h_tuned - h_base  # [n, layer, d]
    change = (delta.norm(dim=-1).mean(dim=0) / h_base.norm(dim=-1).mean(dim=0)).numpy()
    mean_delta = delta.mean(dim=0)
    cosines = np.full(len(layers), np.nan)
    for layer, direction in steering_directions.items():
        if 0 <= layer < len(layers):
            cosines[layer] = float(torch.nn.functional.cosine_similarity(mean_delta[layer], direction.float(), dim=0))
    return InsideView(layers, change, cosines)
