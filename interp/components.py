"""The parts of a transformer that circuits are made of, and the one way they are named.

Every result and page names a component by its :attr:`Component.label`:

========================  ==============================================================
``L1.H2``                 attention head 2 of layer 1 (its output ``z``, all positions)
``L1.attn_out``           layer 1's attention output (all heads, bias included)
``L1.mlp_out``            layer 1's MLP output
``L1.resid_pre``          the residual stream entering layer 1
``L1.resid_pre@5``        the same, at position 5 only (any kind but a head may name a position)
========================  ==============================================================

Layers and heads count from 0, as in TransformerLens (whose hook names ``blocks.{l}.attn.hook_z``,
``blocks.{l}.hook_mlp_out`` these map to). :func:`head_label` is the label of a head for code that has
only numbers (attention plots, head tables). :meth:`Component.from_label` reads every label back, and the
spellings used before the labels were unified (``L1 attn_out``, ``L1 resid_pre @ pos 5``) as well.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

import torch

from interp.errors import InputError
from interp.loading import LoadedModel

ComponentKind = Literal["head", "attn_out", "mlp_out", "resid_pre"]
SiteKind = Literal["heads", "resid_pre", "attn_out", "mlp_out"]  # what a patching sweep runs over
SITE_KINDS: tuple[str, ...] = ("heads", "resid_pre", "attn_out", "mlp_out")
SITE_TITLES = {
    "heads": "Attention heads (output z, all positions)",
    "resid_pre": "Residual stream (before each block)",
    "attn_out": "Attention output",
    "mlp_out": "MLP output",
}
DESCRIPTIONS = {"attn_out": "attention output", "mlp_out": "MLP output", "resid_pre": "residual stream"}

LABEL = re.compile(
    r"L(?P<layer>\d+)(?:\.H(?P<head>\d+)|[. ](?P<kind>attn_out|mlp_out|resid_pre)(?:\s*@\s*(?:pos\s*)?(?P<pos>\d+))?)"
)


def head_label(layer: int, head: int) -> str:
    """``L{layer}.H{head}``: how every plot, table and record names an attention head."""
    return f"L{layer}.H{head}"


def layer_label(layer: int) -> str:
    """``L{layer}``: a layer's row title in a layers x something grid."""
    return f"L{layer}"


@dataclasses.dataclass(frozen=True)
class Component:
    """A thing to ablate or patch: a head, a layer's attention or MLP output, or a residual position."""

    kind: str  # "head" | "attn_out" | "mlp_out" | "resid_pre"
    layer: int
    index: int | None = None  # head for "head"; position for the others (None: all positions)

    @property
    def hook_name(self) -> str:
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z"
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def label(self) -> str:
        """The component's name everywhere: ``L1.H2``, ``L1.attn_out``, ``L1.resid_pre@5``."""
        if self.kind == "head":
            return head_label(self.layer, self.index)
        where = "" if self.index is None else f"@{self.index}"
        return f"{layer_label(self.layer)}.{self.kind}{where}"

    @property
    def description(self) -> str:
        """The label in words, for pickers: ``L1.H2``, ``L1 attention output``, ``L1 residual stream @ 5``."""
        if self.kind == "head":
            return self.label
        where = "" if self.index is None else f" @ {self.index}"
        return f"{layer_label(self.layer)} {DESCRIPTIONS[self.kind]}{where}"

    @classmethod
    def from_label(cls, label: str) -> Component:
        """The component a :attr:`label` names (``L3.H2``, ``L3.attn_out``, ``L3.resid_pre@5``)."""
        match = LABEL.fullmatch(label.strip())
        if match is None:
            raise InputError(
                f"{label!r} names no component; write L<layer>.H<head>, or L<layer>.attn_out / .mlp_out / .resid_pre."
            )
        layer = int(match["layer"])
        if match["head"] is not None:
            return cls("head", layer, int(match["head"]))
        return cls(match["kind"], layer, None if match["pos"] is None else int(match["pos"]))

    def select(self, activation: torch.Tensor) -> tuple:
        """Index into an activation ``[rows, pos, ...]`` picking this component (all rows)."""
        if self.kind == "head":
            return (slice(None), slice(None), self.index)  # hook_z: [rows, pos, head, d_head]
        if self.index is None:
            return (slice(None),)
        return (slice(None), self.index)


def site_component(site_kind: str, layer: int, column: int) -> Component:
    """The component in cell ``(layer, column)`` of a sweep over ``site_kind`` (a head, or a position)."""
    return Component("head" if site_kind == "heads" else site_kind, layer, column)


def all_heads(model: LoadedModel) -> list[Component]:
    return [Component("head", layer, head) for layer in range(model.info.n_layers) for head in range(model.info.n_heads)]


def ablatable_components(model: LoadedModel) -> list[Component]:
    """What the Circuits page offers to ablate together: every head, then each layer's attention and MLP output."""
    layers = range(model.info.n_layers)
    return all_heads(model) + [Component(kind, layer) for layer in layers for kind in ("attn_out", "mlp_out")]


def sites(model: LoadedModel, kind: str, n_positions: int) -> list[Component]:
    """Every site of a sweep over ``kind``, layer by layer: heads, or each position of a layer's activation."""
    if kind == "heads":
        return all_heads(model)
    if kind not in SITE_KINDS:
        raise InputError(f"Unknown site kind {kind!r}; choose from {', '.join(SITE_KINDS)}.")
    return [Component(kind, layer, pos) for layer in range(model.info.n_layers) for pos in range(n_positions)]
