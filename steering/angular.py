"""Angular steering: turn each activation toward a direction, in the plane they span, keeping its norm.

Additive steering (``x + c·d``) changes two things at once: the activation's direction and its length. Angular
steering (after Vu & Nguyen 2025, "Angular Steering") changes only the direction. At every position, write the
activation in the plane spanned by itself and the unit direction ``d̂``:

    x = a·d̂ + b·ê,   a = x·d̂,   b = ‖x − a·d̂‖ ≥ 0,   ê = (x − a·d̂) / b,   φ = atan2(b, a) ∈ [0°, 180°]

``φ`` is the angle between ``x`` and ``d̂``. A rotation in that plane by ``α`` toward ``d̂`` gives

    x' = cos α · x + sin α · (b·d̂ − a·ê)         (so ‖x'‖ = ‖x‖ and the angle to d̂ becomes φ − α)

Two ways to choose ``α`` (``mode``):

* ``"toward"`` — rotate by ``θ`` toward ``d̂``: ``α = θ``, stopped at ``d̂`` (``θ ≥ φ`` gives ``‖x‖·d̂``) and, for a
  negative ``θ`` (away from ``d̂``), at ``−d̂``. ``θ = 0`` is exactly a no-op.
* ``"absolute"`` — set the angle to ``d̂`` to ``θ`` (0°…180°): ``α = φ − θ``. This is the paper's form: the
  activation's component in the steering plane is placed at a chosen angle, whatever angle it had.

The paper rotates within one fixed plane (``d̂`` and a second basis vector chosen once); here the plane is each
position's own ``span(x, d̂)``, so nothing outside the plane is left over and no second vector has to be chosen.
Where ``x`` is zero or (anti)parallel to ``d̂`` that plane is not defined and the activation is left as it is.

Its relatives, as special cases (tested in ``tests/steering/test_angular.py``):

* **Addition** ``x + c·d̂`` also stays in ``span(x, d̂)``: it is the rotation toward ``d̂`` by
  ``α = φ − atan2(b, a + c)`` followed by a rescaling to ``‖x + c·d̂‖``. So addition = rotation + change of norm,
  and ``"toward"`` with ``θ ≥ φ`` (``x' = ‖x‖·d̂``) is where ``x + c·d̂`` points as ``c → ∞``, at the original norm.
* **Directional ablation** ``x − (x·d̂)·d̂`` points along ``ê``, at 90° to ``d̂``: ``"absolute"`` with ``θ = 90°`` is
  that ablation rescaled to ``‖x‖``.

Hooks are made by :func:`angular_hooks`, for :func:`interp.intervene`, ``generate(..., hooks=...)`` or a
:class:`~interp.engine.GenerationRequest`'s ``hooks``; positions work as in :mod:`steering.apply`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import torch

from interp.errors import InputError
from interp.hooks import HookFn, HookSite
from interp.loading import LoadedModel
from interp.validation import check_choice, check_finite
from steering.apply import POSITION_MODES
from steering.vector import SteeringVector

AngleMode = Literal["toward", "absolute"]
ANGLE_MODES: tuple[AngleMode, ...] = ("toward", "absolute")
# Below this fraction of ‖x‖ the part of x off the direction is rounding noise: the plane span(x, d̂) is not defined.
PLANE_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class PlaneCoordinates:
    """Activations ``[..., d_model]`` in their planes with a unit direction ``d̂``: ``x = along·d̂ + across·ê``.

    ``along``, ``across`` and ``angle`` (radians, 0…π) are ``[..., 1]``; ``orthogonal_unit`` (``ê``) is ``[..., d_model]``
    and zero where ``defined`` is False (x zero or (anti)parallel to d̂).
    """

    along: torch.Tensor
    across: torch.Tensor
    orthogonal_unit: torch.Tensor
    angle: torch.Tensor
    defined: torch.Tensor


def plane_coordinates(activation: torch.Tensor, unit_direction: torch.Tensor) -> PlaneCoordinates:
    """Where each activation ``[..., d_model]`` lies in its plane with ``unit_direction`` ``[d_model]`` (same dtype)."""
    along = activation @ unit_direction  # [...]
    along = along[..., None]  # [..., 1]
    off_direction = activation - along * unit_direction  # [..., d_model]
    across = off_direction.norm(dim=-1, keepdim=True)  # [..., 1]
    defined = across > PLANE_TOLERANCE * activation.norm(dim=-1, keepdim=True)
    # where the plane is undefined ê is 0, so the rotation below leaves x as it is and no 0/0 appears
    orthogonal_unit = torch.where(defined, off_direction / across.clamp_min(torch.finfo(across.dtype).tiny), 0.0)
    return PlaneCoordinates(along, across, orthogonal_unit, torch.atan2(across, along), defined)


def rotation_angle(coordinates: PlaneCoordinates, angle_radians: float | torch.Tensor, mode: AngleMode) -> torch.Tensor:
    """How far (radians, ``[..., 1]``) to turn each activation toward the direction, for ``mode``'s meaning of the angle."""
    angle = torch.as_tensor(angle_radians, dtype=coordinates.angle.dtype, device=coordinates.angle.device)
    if mode == "toward":  # stop at d̂ (angle 0) going toward it, at −d̂ (angle π) going away
        turn = torch.minimum(torch.maximum(angle, coordinates.angle - math.pi), coordinates.angle)
    else:
        turn = coordinates.angle - angle
    return torch.where(coordinates.defined, turn, torch.zeros_like(turn))


def rotate_toward(
    activation: torch.Tensor,
    direction: torch.Tensor,
    angle_radians: float | torch.Tensor,
    *,
    mode: AngleMode = "toward",
) -> torch.Tensor:
    """Each activation ``[..., d_model]`` turned toward ``direction`` in the plane they span, its norm kept.

    Args:
        activation: Residual-stream activations (any leading shape); returned in their dtype.
        direction: ``[d_model]``, any nonzero length (it is normalised here).
        angle_radians: The angle (see the module docstring for ``mode``); a tensor broadcasting to ``[..., 1]``
            gives each position its own.
        mode: ``"toward"`` rotates by the angle; ``"absolute"`` sets the angle to the direction.

    Example:
        >>> x = torch.tensor([[1.0, 1.0]])
        >>> rotate_toward(x, torch.tensor([1.0, 0.0]), math.radians(45))  # onto the direction, norm √2
        tensor([[1.4142, 0.0000]])
    """
    work_dtype = torch.promote_types(activation.dtype, torch.float32)  # bf16 angles are too coarse
    x = activation.to(work_dtype)
    unit = direction.to(device=x.device, dtype=work_dtype)
    unit = unit / unit.norm()
    coordinates = plane_coordinates(x, unit)
    turn = rotation_angle(coordinates, angle_radians, mode)
    # (a, b) -> (a cos α + b sin α, b cos α − a sin α); at α = 0 exactly x, so angle 0 changes no bit
    perpendicular = coordinates.across * unit - coordinates.along * coordinates.orthogonal_unit  # x turned by 90°
    rotated = torch.cos(turn) * x + torch.sin(turn) * perpendicular
    return rotated.to(activation.dtype)


def angular_hooks(
    model: LoadedModel,
    vector: SteeringVector,
    angle_degrees: float,
    *,
    layers: Sequence[int] | None = None,
    positions: str = "all",
    mode: AngleMode = "toward",
) -> list[tuple[str, HookFn]]:
    """``(hook name, function)`` pairs that rotate the activation toward the vector's direction at each chosen layer.

    Args:
        vector: Its direction at each layer is what activations turn toward (only its direction counts, not its norm).
        angle_degrees: ``"toward"``: −180…180 (negative turns away); ``"absolute"``: 0…180.
        layers: A subset of the vector's layers (default: all of them).
        positions: ``"all"``, ``"prompt"`` (the prompt pass only) or ``"generated"`` (every pass after it).
        mode: ``"toward"`` or ``"absolute"`` (see the module docstring).

    Raises:
        InputError: a non-finite or out-of-range angle, an unknown mode or positions, layers the vector lacks, a
            vector made for another model, or a zero direction (there is nothing to turn toward).

    Example:
        >>> hooks = angular_hooks(model, sentiment, 30.0, layers=[4])
        >>> generate(model, "I think the weather", max_new_tokens=20, hooks=hooks).text
    """
    check_choice("angle mode", mode, ANGLE_MODES)
    check_choice("positions", positions, POSITION_MODES)
    low = -180.0 if mode == "toward" else 0.0
    check_finite("angle (degrees)", angle_degrees, low=low, high=180.0)
    vector.check_for(model)
    chosen = vector.layers if layers is None else [layer for layer in layers if layer in vector.layers]
    if layers is not None and not chosen:
        raise InputError(f"The vector has no direction at layer(s) {list(layers)}; it covers {list(vector.layers)}.")
    hooks = []
    for layer in chosen:
        direction = vector.direction(layer).float()
        if float(direction.norm()) == 0.0:
            raise InputError(
                f"The vector's direction at layer {layer} is zero; angular steering needs a direction to turn toward."
            )
        unit = (direction / direction.norm()).to(model.device)
        hooks.append((vector.hook_name(layer), _rotator(unit, math.radians(float(angle_degrees)), mode, positions)))
    return hooks


def _rotator(unit: torch.Tensor, angle_radians: float, mode: AngleMode, positions: str) -> HookFn:
    def rotate(activation: torch.Tensor, site: HookSite) -> torch.Tensor | None:
        if positions == "prompt" and site.position_offset > 0:
            return None
        if positions == "generated" and site.position_offset == 0:
            return None
        return rotate_toward(activation, unit, angle_radians, mode=mode)

    return rotate
