"""What a steering vector means: the tokens it promotes, how its layers relate, where it lights up."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from interp.activations import record
from interp.hooks import intervene
from interp.lens import LensResult
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


# Neutral text on which to ask whether a layer's residual stream already reads through the unembedding.
LENS_PROBE = (
    "I think the weather today is nice. My neighbour told me that the city council announced a new project, "
    "and the meeting this afternoon was about the report on the new building."
)
READING_HOLDS = 0.5  # the share of positions whose lens prediction must be the model's own for the reading to hold


@dataclasses.dataclass(frozen=True)
class UnembeddingCheck:
    """Whether reading a layer's direction through the unembedding (:func:`token_effects`) means much there.

    ``agreement``: the share of :data:`LENS_PROBE`'s positions where the logit lens at that layer's residual
    stream already predicts the model's own final next token. Early layers do not yet speak the unembedding's
    language (see :mod:`interp.lens`), so there the promoted tokens are mostly noise.
    """

    layer: int
    agreement: float

    @property
    def holds(self) -> bool:
        return self.agreement >= READING_HOLDS


def unembedding_check(lens: LensResult, vector: SteeringVector, layer: int) -> UnembeddingCheck:
    """How well the unembedding reads ``vector``'s hook at ``layer``, from the logit lens of :data:`LENS_PROBE`.

    Lens row 0 is the embedding (``resid_pre`` of block 0), row ``l + 1`` the stream after block ``l``
    (``resid_post`` of ``l``, ``resid_pre`` of ``l + 1``); the last row is the model's output.
    """
    row = layer + 1 if vector.hook_point == "resid_post" else layer  # resid_mid is read as its block's input
    top = lens.top_ids[..., 0]  # [layer_row, position]
    return UnembeddingCheck(layer, float(np.mean(top[row] == top[-1])))


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
