"""Making steering vectors from contrasting text, with activations recorded through the hook context.

* **ActAdd** (Turner et al. 2023): one prompt pair, e.g. "Love" vs "Hate". The paper adds the
  per-position difference of the pair's activations at the front of the prompt; here the
  difference is averaged over the pair's positions into one direction per layer, so the vector
  has the same shape as the others and exports to llama.cpp (which takes one per layer).
* **Mean difference / CAA** (Rimsky et al. 2024): the mean over many pairs of
  ``activation(positive) - activation(negative)``, read at the last token or averaged over tokens.
* **PCA** (as repeng does): the first principal component of the pair differences, signed so the
  positive examples project higher, and scaled to the mean difference's norm so its coefficients
  mean the same as a mean-difference vector's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interp.activations import record
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, pad_rows, tokenize
from interp.validation import check_text
from steering.datasets import MAX_PAIR_CHARS, ContrastPairs
from steering.vector import SteeringVector

POSITIONS = ("last", "mean")
# Contrast texts are a word, a sentence or a short paragraph; one pasted page would run the shared model on
# thousands of tokens per text (and 32 texts per batch), so each is capped.
MAX_TEXT_TOKENS = 256


def encode_contrast_text(model: LoadedModel, text: str, what: str = "contrast text") -> list[int]:
    """Token ids of one contrast text, refusing texts over :data:`MAX_TEXT_TOKENS` with their length."""
    check_text(what, text, max_chars=MAX_PAIR_CHARS, allow_empty=False)
    ids = tokenize(model, text)
    if len(ids) > MAX_TEXT_TOKENS:
        raise InputError(
            f"The {what} is {len(ids)} tokens; steering texts are limited to {MAX_TEXT_TOKENS} tokens each. "
            f"Shorten it (it starts {text[:40]!r})."
        )
    return ids


def _check_layers(model: LoadedModel, layers: Sequence[int]) -> list[int]:
    layers = sorted(set(int(layer) for layer in layers))
    if not layers:
        raise InputError("Choose at least one layer.")
    bad = [layer for layer in layers if not 0 <= layer < model.info.n_layers]
    if bad:
        raise InputError(f"Layer(s) {bad} do not exist; {model.info.name} has layers 0..{model.info.n_layers - 1}.")
    return layers


def text_activations(
    model: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    position: str = "last",
    hook_point: str = "resid_pre",
    batch_size: int = 32,
    what: str = "text",
) -> torch.Tensor:
    """Activations ``[len(texts), len(layers), d_model]`` at the last token or averaged over tokens.

    Every text is checked (at most :data:`MAX_TEXT_TOKENS` tokens) before the model runs on any;
    ``what`` names them in that message ("positive text of pair" gives "positive text of pair 3").
    """
    if position not in POSITIONS:
        raise InputError(f"Unknown position {position!r}; choose 'last' or 'mean'.")
    names = [f"blocks.{layer}.hook_{hook_point}" for layer in layers]
    pad = baseline_token_id(model)
    every = [encode_contrast_text(model, text, f"{what} {i + 1}") for i, text in enumerate(texts)]
    out = []
    for start in range(0, len(every), batch_size):
        encoded = every[start : start + batch_size]
        padded = pad_rows(encoded, pad, side="right")  # right padding: real positions are unaffected
        tokens, real = padded.tokens, padded.mask.bool()
        acts = record(model, tokens, names).stack(names).float().cpu()  # [layer, batch, pos, d]
        if position == "last":
            last = real.sum(dim=1) - 1
            picked = acts[:, torch.arange(len(encoded)), last]  # [layer, batch, d]
        else:
            weights = real.float()[None, :, :, None]
            picked = (acts * weights).sum(dim=2) / weights.sum(dim=2)
        out.append(picked.transpose(0, 1))
    return torch.cat(out)


def _vector(
    model: LoadedModel, layers: list[int], directions: torch.Tensor, method: str, source: str, hook_point: str
) -> SteeringVector:
    return SteeringVector(
        layers=tuple(layers),
        directions=directions.float(),
        hook_point=hook_point,
        model_name=model.info.name,
        d_model=model.info.d_model,
        weights_sha256=model.info.weights_sha256,
        method=method,
        source=source,
    )


def actadd(
    model: LoadedModel, positive: str, negative: str, layers: Sequence[int], *, hook_point: str = "resid_pre"
) -> SteeringVector:
    """ActAdd from one prompt pair: the pair's activation difference, averaged over its positions."""
    layers = _check_layers(model, layers)
    rows = [encode_contrast_text(model, positive, "'towards' text"), encode_contrast_text(model, negative, "'away from' text")]
    padded = pad_rows(rows, baseline_token_id(model))  # right padding, as in the paper
    tokens = padded.tokens
    names = [f"blocks.{layer}.hook_{hook_point}" for layer in layers]
    acts = record(model, tokens, names).stack(names).float().cpu()  # [layer, 2, pos, d]
    directions = (acts[:, 0] - acts[:, 1]).mean(dim=1)
    return _vector(model, layers, directions, "actadd", f"ActAdd: {positive!r} - {negative!r}", hook_point)


def mean_difference(
    model: LoadedModel, pairs: ContrastPairs, layers: Sequence[int], *, position: str = "last", hook_point: str = "resid_pre"
) -> SteeringVector:
    """Contrastive activation addition: mean of positive-minus-negative activations over the pairs."""
    layers = _check_layers(model, layers)
    differences = _differences(model, pairs, layers, position, hook_point)
    source = f"mean difference over {len(pairs)} pairs of '{pairs.name}' at the {position} token"
    return _vector(model, layers, differences.mean(dim=0), "mean_difference", source, hook_point)


def pca_direction(
    model: LoadedModel, pairs: ContrastPairs, layers: Sequence[int], *, position: str = "last", hook_point: str = "resid_pre"
) -> SteeringVector:
    """First principal component of the pair differences (repeng's ``pca_diff``), signed and scaled."""
    layers = _check_layers(model, layers)
    differences = _differences(model, pairs, layers, position, hook_point)  # [pairs, layers, d]
    rows = []
    for i in range(len(layers)):
        diffs = differences[:, i]
        centred = diffs - diffs.mean(dim=0, keepdim=True)
        component = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        projections = diffs @ component
        if projections.mean() < 0:
            component, projections = -component, -projections
        rows.append(component * diffs.mean(dim=0).norm())
    source = f"first principal component of {len(pairs)} pair differences of '{pairs.name}' at the {position} token"
    return _vector(model, layers, torch.stack(rows), "pca", source, hook_point)


def _differences(model: LoadedModel, pairs: ContrastPairs, layers: list[int], position: str, hook_point: str) -> torch.Tensor:
    if len(pairs) < 2:
        raise InputError("A direction needs at least 2 contrast pairs.")
    for side, texts in (("positive", pairs.positive), ("negative", pairs.negative)):  # every text checked before any runs
        for i, text in enumerate(texts):
            encode_contrast_text(model, text, f"{side} text of pair {i + 1}")
    positive = text_activations(
        model, pairs.positive, layers, position=position, hook_point=hook_point, what="positive text of pair"
    )
    negative = text_activations(
        model, pairs.negative, layers, position=position, hook_point=hook_point, what="negative text of pair"
    )
    return positive - negative
