"""The lean decode path: the Hugging Face modules themselves, sharing the bridge's weights, with the
TransformerLens hook names that generation uses mapped onto them.

Why: a decode step through the TransformerLens bridge passes ~1,700 Python module calls (a hook point before and
after every component, layout conversions) around a few dozen matrix products; for one new token of a 135M model
that overhead costs about as much as the arithmetic. Generation needs only a handful of hook points (the residual
stream where steering vectors go, a head's output for ablations), so the engine decodes through a plain Hugging
Face model built on the same parameter tensors (no copy: ``assign``-ed, so the weights exist once) and attaches
PyTorch hooks at those points under the same names. Anything else falls back to the bridge.

Parity (``tests/interp/test_lean.py``): logits equal the bridge's within 1e-4, greedy tokens are identical, and a
hook sees the same activation at the same name and positions on both paths.

Supported names (Llama-family models, ``model.layers``): ``blocks.{l}.hook_resid_pre``, ``blocks.{l}.hook_resid_post``,
``blocks.{l}.hook_attn_out``, ``blocks.{l}.hook_mlp_out``, ``blocks.{l}.attn.hook_z``.
"""

from __future__ import annotations

import re
import threading

import torch

from interp.loading import LoadedModel

_NAME = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_attn_out|hook_mlp_out|attn\.hook_z)$")
_build_lock = threading.Lock()


def _hf_name(bridge_name: str) -> str:
    return bridge_name.replace("._original_component", "")


def lean_model(model: LoadedModel) -> torch.nn.Module | None:
    """The plain Hugging Face model over ``model``'s own weights (built once), or None where there is none."""
    lean = getattr(model, "_lean", False)
    if lean is not False:
        return lean
    with _build_lock:
        if getattr(model, "_lean", False) is False:
            model._lean = _build(model)  # type: ignore[attr-defined]
    return model._lean  # type: ignore[attr-defined]


def _build(model: LoadedModel) -> torch.nn.Module | None:
    from transformers import AutoModelForCausalLM

    original = model.hf_model
    if not hasattr(getattr(original, "model", None), "layers"):
        return None  # not a Llama-family layout: the bridge serves it
    config = original.config
    with torch.device("meta"):
        lean = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    tensors = {_hf_name(name): p for name, p in original.named_parameters(remove_duplicate=False)}
    tensors.update({_hf_name(name): b for name, b in original.named_buffers(remove_duplicate=False)})
    slots = [("_parameters", name) for name, _ in lean.named_parameters(remove_duplicate=False)]
    slots += [("_buffers", name) for name, _ in lean.named_buffers(remove_duplicate=False)]
    for kind, name in slots:
        if name not in tensors:
            return None  # a layout we do not know: never decode with a half-filled model
        owner, _, leaf = name.rpartition(".")
        getattr(lean.get_submodule(owner), kind)[leaf] = tensors[name]
    lean.eval()
    return lean


def lean_supports(model: LoadedModel, names: list[str]) -> bool:
    """Whether every hook name can be served on the lean path (and the model has one)."""
    for name in names:
        match = _NAME.match(name)
        if match is None or int(match.group(1)) >= model.info.n_layers:
            return False  # the bridge serves it (and names a wrong one with its closest real names)
    return lean_model(model) is not None


def lean_hook_target(model: LoadedModel, name: str) -> tuple[torch.nn.Module, str]:
    """The lean module a hook name lives on, and how: "pre" (its input) or "post" (its output)."""
    lean = lean_model(model)
    match = _NAME.match(name)
    if lean is None or match is None or int(match.group(1)) >= model.info.n_layers:
        raise KeyError(name)
    layer, point = lean.model.layers[int(match.group(1))], match.group(2)
    return {
        "hook_resid_pre": (layer, "pre"),
        "hook_resid_post": (layer, "post"),
        "hook_attn_out": (layer.self_attn, "post"),
        "hook_mlp_out": (layer.mlp, "post"),
        "attn.hook_z": (layer.self_attn.o_proj, "pre_z"),
    }[point]
