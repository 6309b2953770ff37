"""What a steering vector means: the tokens it promotes, how its layers relate, where it lights up."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from interp.activations import record
from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.tokens import as_batch, token_label, token_labels, tokenize
from steering.vector import SteeringVector


@dataclasses.dataclass(frozen=True)
class TokenEffect:
    """Tokens whose logits the direction raises and lowers most, read through the unembedding."""

    layer: int
    promoted: tuple[tuple[str, float], ...]
    suppressed: tuple[tuple[str, float], ...]


def token_effects(model: LoadedModel, vector: SteeringVector, layer: int, k: int = 15) -> TokenEffect:
    """The logit lens of the direction: unembedding(final-norm weight ⊙ direction), centred.

    The norm's scale is left out (it depends on the residual the direction is added to), so the
    numbers rank tokens rather than predict logit changes exactly.
    """
    direction = vector.direction(layer).float().to(model.device)
    norm = model.bridge.ln_final.original_component
    weight = getattr(norm, "weight", None)
    scaled = direction * weight.detach().float() if weight is not None else direction
    unembed = model.bridge.unembed.original_component.weight.detach().float()
    with intervene(model), torch.no_grad():
        logits = unembed @ scaled
    logits = logits - logits.mean()
    top, bottom = torch.topk(logits, k), torch.topk(-logits, k)
    label = lambda i: token_label(model.tokenizer, int(i))  # noqa: E731
    return TokenEffect(
        layer,
        tuple((label(i), float(v)) for v, i in zip(top.values, top.indices, strict=True)),
        tuple((label(i), float(-v)) for v, i in zip(bottom.values, bottom.indices, strict=True)),
    )


def layer_cosines(vector: SteeringVector) -> np.ndarray:
    """Cosine similarity between every pair of the vector's layers' directions."""
    unit = vector.directions.float() / vector.directions.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (unit @ unit.T).numpy()


@dataclasses.dataclass(frozen=True)
class Projection:
    tokens: tuple[str, ...]
    values: np.ndarray  # projection of each position's activation on the unit direction


def token_projections(model: LoadedModel, vector: SteeringVector, layer: int, prompt: str) -> Projection:
    """Where the concept lights up: each token's activation at the vector's hook, projected on its direction."""
    ids = tokenize(model, prompt)
    name = vector.hook_name(layer)
    activation = record(model, as_batch(ids, model), [name]).activations[name][0].float().cpu()
    direction = vector.direction(layer).float()
    values = (activation @ (direction / direction.norm().clamp_min(1e-12))).numpy()
    return Projection(tuple(token_labels(model, ids)), values)
