"""Record while steering: the activations a steered generation actually ran on, captured in its own forward passes.

Recomputing activations afterwards (teacher-forcing the steered text) answers a slightly different question and
costs another pass; here the capture hooks ride along with the steering hooks in the very passes that chose the
tokens, so what is recorded is what the model saw: the prompt's positions from the first (full-prompt) pass, then
one position per decode step, read from the same KV-cached run.

**Hook order.** The steering hooks are registered first and the capture hooks after them, in one
:func:`interp.hooks.intervene` block. PyTorch runs a module's forward hooks in registration order and hands each
the output the previous one returned, so at a steered hook point the capture sees the activation *after* the
steering addition (``x + c·d``), and at every other point the downstream consequence of it.

**Positions.** Generation feeds the prompt, then every generated token except the last (the last is chosen but
never read), so a recording covers ``len(prompt) + len(continuation) − 1`` positions: row ``t`` is the activation
at absolute position ``t`` of prompt + continuation. Those rows equal a teacher-forced steered pass over the same
tokens to float rounding (tested ≤ 1e-4).

**Projections.** For each recorded hook point at layer ``l`` and each vector: the activation's component along the
vector's unit direction at ``l`` (per position), or, where the vector has no direction at ``l``, along its
direction at the first steered layer — how much of what was added each layer still carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from interp.errors import InputError
from interp.generation import generate
from interp.hooks import HookSite, intervene, resolve_hook_point
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_choice, check_finite, default_of
from interp.tokens import token_labels
from interp.validation import check_text
from steering.apply import POSITION_MODES, steering_hooks
from steering.runs import Positions, check_sampling, check_vector_layers
from steering.vector import SteeringVector


@dataclasses.dataclass(frozen=True)
class SteeredRecording:
    """One steered generation and the activations captured in its forward passes.

    Attributes:
        prompt, text: The prompt and the generated text.
        prompt_token_ids, token_ids: The prompt's tokens and the generated ones.
        tokens: The label of every recorded position (prompt tokens, then every generated token but the last).
        names: The recorded hook points, in order.
        activations: ``name -> [positions, d_model]`` float32, as the model saw them (after the steering addition).
        projections: ``name -> [vectors, positions]`` each vector's unit-direction component (residual units).
        norms: ``name -> [positions]`` the activation's L2 norm.
        steered_layers: Per vector, the layers it steered; coefficients: per vector.
        forward_passes: Forward passes the generation made (each recorded once: no extra pass was run).
    """

    prompt: str
    text: str
    prompt_token_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    names: tuple[str, ...]
    activations: dict[str, np.ndarray]
    projections: dict[str, np.ndarray]
    norms: dict[str, np.ndarray]
    steered_layers: tuple[tuple[int, ...], ...]
    coefficients: tuple[float, ...]
    forward_passes: int

    @property
    def n_prompt(self) -> int:
        """Recorded positions that belong to the prompt (the rest are generated positions)."""
        return len(self.prompt_token_ids)

    def projection(self, name: str, vector: int = 0) -> np.ndarray:
        """``[positions]`` vector ``vector``'s component at ``name``."""
        return self.projections[name][vector]


def record_steered(
    model: LoadedModel,
    prompt: str,
    vectors: SteeringVector | Sequence[SteeringVector],
    coefficients: float | Sequence[float],
    layers: Sequence[int] | None = None,
    *,
    names: Sequence[str] | None = None,
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    seed: int | None = None,
    positions: str = "all",
    chat: bool = False,
) -> SteeredRecording:
    """Generate from ``prompt`` with the vectors added and record ``names`` in the same forward passes.

    Args:
        vectors, coefficients, layers, positions: The steering, as :func:`steering.apply.steer` takes it.
        names: Hook points to record (default: ``resid_pre`` of every layer).
        temperature, seed: Greedy at 0; else seeded sampling (as :func:`interp.generation.generate`).

    Raises:
        InputError: the steering's errors (:func:`steering.apply.steering_additions`), an unknown hook point, or an
            activation that is not ``[batch, positions, d_model]`` (attention patterns cannot be stacked per position).

    Example:
        >>> rec = record_steered(model, "I think the weather", sentiment, 4.0, [8], max_new_tokens=12)
        >>> rec.projection("blocks.10.hook_resid_pre")  # how much of the direction layer 10 carries, per position
    """
    vector_list = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    steering = steering_hooks(model, vector_list, coefficients, layers=layers, positions=positions)
    default = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.info.n_layers)]
    chosen = list(dict.fromkeys(names)) if names is not None else default  # each point once, in the order given
    if not chosen:
        raise InputError("Choose at least one hook point to record.")
    for name in chosen:
        resolve_hook_point(model, name)  # an unknown name fails here, before anything runs
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in chosen}

    def keep(activation: torch.Tensor, site: HookSite) -> None:
        if activation.ndim != 3 or activation.shape[-1] != model.info.d_model:
            raise InputError(f"{site.name} is not a [positions, d_model] activation; record residual-stream points.")
        parts[site.name].append(activation[0].detach().float().cpu())  # [pass positions, d_model]

    # steering first, capture second: each capture hook sees the activation after the addition (module docstring)
    with intervene(model, [*steering, *((name, keep) for name in chosen)]):
        generation = generate(model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chat=chat)
    activations = {name: torch.cat(parts[name]).numpy() for name in chosen}
    n_positions = len(generation.prompt_token_ids) + len(generation.token_ids) - 1
    if any(a.shape[0] != n_positions for a in activations.values()):
        raise InputError("The recorded positions do not match the generation; record hook points every pass runs.")
    coefficient_list = [float(coefficients)] * len(vector_list) if isinstance(coefficients, int | float) else list(coefficients)
    steered = [tuple(v.layers if layers is None else [la for la in layers if la in v.layers]) for v in vector_list]
    units = [_unit_directions(v, s) for v, s in zip(vector_list, steered, strict=True)]
    projections, norms = {}, {}
    for name, values in activations.items():
        projections[name] = np.stack([values @ unit(_layer_of(name)) for unit in units])
        norms[name] = np.linalg.norm(values, axis=-1)
    ids = [*generation.prompt_token_ids, *generation.token_ids[:-1]]
    return SteeredRecording(
        prompt=prompt,
        text=generation.text,
        prompt_token_ids=generation.prompt_token_ids,
        token_ids=generation.token_ids,
        tokens=tuple(token_labels(model, ids)),
        names=tuple(chosen),
        activations=activations,
        projections=projections,
        norms=norms,
        steered_layers=tuple(steered),
        coefficients=tuple(float(c) for c in coefficient_list),
        forward_passes=len(parts[chosen[0]]),  # the passes the capture saw: generation's own, one per token chosen
    )


def _layer_of(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit() else None


def _unit_directions(vector: SteeringVector, steered: Sequence[int]):
    """``layer -> unit direction [d_model]``: the vector's own at that layer, else its first steered layer's."""
    fallback = steered[0] if steered else vector.layers[0]

    def unit(layer: int | None) -> np.ndarray:
        direction = vector.direction(layer if layer in vector.layers else fallback).double().cpu().numpy()
        norm = np.linalg.norm(direction)
        return (direction / norm if norm > 0 else direction).astype(np.float32)

    return unit


@dataclasses.dataclass(frozen=True)
class SteeredRecordingRun(RunSpec):
    """One vector added at one layer while the model writes from ``prompt``, recorded in the generation's own passes."""

    kind: ClassVar[str] = "steering_recording"
    title: ClassVar[str] = "Steered recording"
    mirrors = (record_steered,)

    vector: SteeringVector
    layer: int
    coefficient: float
    prompt: str
    names: tuple[str, ...] | None = default_of(record_steered, "names")  # None: resid_pre of every layer
    max_new_tokens: int = default_of(record_steered, "max_new_tokens")
    temperature: float = default_of(record_steered, "temperature")
    seed: int | None = default_of(record_steered, "seed")
    positions: Positions = default_of(record_steered, "positions")
    chat: bool = default_of(record_steered, "chat")

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, (self.layer,))
        check_finite("coefficient", self.coefficient)
        check_text("prompt", self.prompt, allow_empty=False)
        check_sampling(self.max_new_tokens, self.temperature)
        check_choice("positions", self.positions, POSITION_MODES)
        object.__setattr__(self, "layer", int(self.layer))
        object.__setattr__(self, "coefficient", float(self.coefficient))
        object.__setattr__(self, "temperature", float(self.temperature))
        if self.names is not None:
            object.__setattr__(self, "names", tuple(self.names))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> SteeredRecording:
        if progress is not None:
            progress(0.0, f"Writing {self.max_new_tokens} tokens steered at layer {self.layer}, recording every pass")
        recording = record_steered(
            model, self.prompt, self.vector, self.coefficient, [self.layer], names=self.names,
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed, positions=self.positions,
            chat=self.chat,
        )  # fmt: skip
        if progress is not None:
            progress(1.0, "Recorded")
        return recording
