"""Applying steering vectors during a run: one context manager over the hook context.

``with steer(model, vector, 4.0): generate(model, prompt)`` adds ``4.0 × direction`` to the
residual stream at the vector's layers for the whole generation, KV cache included. Positions:

* ``"all"`` — every position, prompt and generated;
* ``"prompt"`` — only the prompt (the first, full-prompt forward pass); generated tokens then see
  the steered prompt only through attention;
* ``"generated"`` — only newly generated positions (every forward pass after the first).

The model is never mutated: the additions are hooks registered by :func:`interp.intervene`,
which holds the model's lock and removes them when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from interp.engine import RowAddition
from interp.errors import InputError
from interp.hooks import HookRun, HookSite, intervene
from interp.loading import LoadedModel
from interp.validation import check_finite
from steering.vector import SteeringVector

POSITION_MODES = ("all", "prompt", "generated")


def steering_additions(
    model: LoadedModel,
    vectors: SteeringVector | Sequence[SteeringVector],
    coefficients: float | Sequence[float],
    *,
    layers: Sequence[int] | None = None,
    positions: str = "all",
) -> tuple[RowAddition, ...]:
    """``coefficient × direction`` at each chosen layer of each vector, checked, as data: per-request additions for
    the engine (:mod:`interp.engine`), applied to that request's rows only; :func:`steering_hooks` makes hooks of them."""
    if positions not in POSITION_MODES:
        raise InputError(f"Unknown positions {positions!r}; choose from {', '.join(POSITION_MODES)}.")
    vectors = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    coefficients = (
        [float(coefficients)] * len(vectors) if isinstance(coefficients, int | float) else [float(c) for c in coefficients]
    )
    if len(coefficients) != len(vectors):
        raise InputError(f"{len(vectors)} vector(s) but {len(coefficients)} coefficient(s).")
    for coefficient in coefficients:
        check_finite("coefficient", coefficient)  # NaN steering makes NaN logits: empty text, not an error
    additions = []
    for vector, coefficient in zip(vectors, coefficients, strict=True):
        vector.check_for(model)
        chosen = vector.layers if layers is None else [layer for layer in layers if layer in vector.layers]
        if layers is not None and not chosen:
            raise InputError(f"The vector has no direction at layer(s) {list(layers)}; it covers {list(vector.layers)}.")
        additions.extend(
            RowAddition(vector.hook_name(layer), coefficient * vector.direction(layer).float(), positions)  # type: ignore[arg-type]
            for layer in chosen
        )
    return tuple(additions)


def steering_hooks(
    model: LoadedModel,
    vectors: SteeringVector | Sequence[SteeringVector],
    coefficients: float | Sequence[float],
    *,
    layers: Sequence[int] | None = None,
    positions: str = "all",
) -> list[tuple[str, object]]:
    """The ``(hook name, function)`` pairs that add the vectors; for :func:`interp.intervene` or ``hooks=``."""
    additions = steering_additions(model, vectors, coefficients, layers=layers, positions=positions)
    return [(a.hook_name, addition_hook(a.delta.to(model.device), a.positions)) for a in additions]


def addition_hook(delta: torch.Tensor, positions: str):
    """The hook that adds ``delta`` (one layer's coefficient × direction) at ``positions`` ("all", "prompt" or
    "generated", told apart by the site's offset into a KV-cached generation); composition adds a sum with it."""

    def add(activation: torch.Tensor, site: HookSite) -> torch.Tensor | None:
        if positions == "prompt" and site.position_offset > 0:
            return None
        if positions == "generated" and site.position_offset == 0:
            return None
        return activation + delta.to(activation.dtype)

    return add


@contextlib.contextmanager
def steer(
    model: LoadedModel,
    vectors: SteeringVector | Sequence[SteeringVector],
    coefficients: float | Sequence[float],
    *,
    layers: Sequence[int] | None = None,
    positions: str = "all",
) -> Iterator[HookRun]:
    """Steer every run of ``model`` inside the block (several vectors at once if given a list).

    Example:
        >>> with steer(model, sentiment, 4.0, layers=[8]) as run:
        ...     text = generate(model, "I think the weather", max_new_tokens=20).text
        >>> run.fired("blocks.8.hook_resid_pre") > 0
        True
    """
    with intervene(model, steering_hooks(model, vectors, coefficients, layers=layers, positions=positions)) as run:
        yield run
