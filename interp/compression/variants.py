"""Compressed variants of a model, each a real :class:`~interp.loading.LoadedModel` the rest of Steerscope can use.

A variant is a copy of the model's bridge (parameters copied one at a time, as :func:`interp.fast.fast_copy` does)
with its weights changed, under its own ``weights_sha256`` (the original's digest and the variant's description), so
cached results of the original and of each variant never mix. It shares the original's lock: one computation at a
time on the same cores.

* **bf16** — every weight cast to bfloat16 (this CPU has AVX-512 BF16).
* **Unstructured magnitude pruning** — the smallest-magnitude weights of every attention and MLP projection set to
  zero (L1, by :func:`torch.nn.utils.prune.l1_unstructured` per layer or
  :func:`~torch.nn.utils.prune.global_unstructured` over all of them), then made permanent. Embeddings, norms and the
  unembedding are left alone, as in the pruning literature (they are few and fragile). ``round(amount * n)`` weights
  go, exactly — PyTorch's own rule.
* **int8 weight-only**, **dynamic int8** (weights int8 per channel, activations quantised per token at run time) and
  **int4 weight-only** (asymmetric, groups of 32 — the shape of the GGUF's own Q4_1 blocks) by torchao 0.18 on every
  attention and MLP projection; the unembedding (tied to the embeddings in SmolLM2) stays fp32. torchao's int4
  *tinygemm* path needs a GPU (or the ``mslk`` kernels), so int4 here is its ``IntxWeightOnlyConfig`` (dequantised
  on the fly: smaller, not faster, on this CPU).
* **Head pruning** (structured) — chosen heads' columns of the attention output projection set to zero, so each
  pruned head writes nothing to the residual stream (its pattern is still computed; under grouped-query attention a
  head's key/value head is shared, so the output side is the one that can be cut per head). Which heads:
  any list, or :func:`least_important_heads` of a Circuits page zero-ablation sweep (the heads a task needs least).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from typing import Literal

import numpy as np
import torch
from torch.nn.utils import prune

from interp.components import Component, head_label
from interp.errors import InputError
from interp.hooks import intervene
from interp.loading import LoadedModel

VariantKind = Literal["bf16", "int8_weight", "int8_dynamic", "int4_weight", "prune_unstructured", "prune_heads"]
VARIANT_KINDS = ("bf16", "int8_weight", "int8_dynamic", "int4_weight", "prune_unstructured", "prune_heads")
QUANTISED = ("int8_weight", "int8_dynamic", "int4_weight")
INT4_GROUP = 32
PRUNED_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",  # Llama family
                  "c_attn", "c_proj", "c_fc")  # GPT-2  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Variant:
    """How to shrink a model: the kind, and for pruning how much (a fraction of weights) or which heads."""

    kind: VariantKind
    amount: float = 0.0  # prune_unstructured: the fraction of each pruned matrix's (or all of them, global) weights
    scope: Literal["layer", "global"] = "layer"  # prune_unstructured: per matrix, or the smallest over all matrices
    heads: tuple[str, ...] = ()  # prune_heads: "L1.H2", ...

    def __post_init__(self) -> None:
        if self.kind not in VARIANT_KINDS:
            raise InputError(f"Unknown variant {self.kind!r}; choose from {', '.join(VARIANT_KINDS)}.")
        if self.kind == "prune_unstructured" and not 0.0 <= self.amount < 1.0:
            raise InputError(f"Prune a fraction of the weights from 0 up to (not including) 1 (got {self.amount}).")
        if self.scope not in ("layer", "global"):
            raise InputError(f"Prune per 'layer' or 'global' (got {self.scope!r}).")
        if self.kind == "prune_heads":
            for label in self.heads:
                if Component.from_label(label).kind != "head":
                    raise InputError(f"{label!r} is not a head; write heads as L<layer>.H<head>.")

    def describe(self) -> str:
        if self.kind == "bf16":
            return "bf16 weights"
        if self.kind in QUANTISED:
            return {"int8_weight": "int8 weights", "int8_dynamic": "int8 weights and activations (dynamic)",
                    "int4_weight": f"int4 weights (groups of {INT4_GROUP})"}[self.kind]  # fmt: skip
        if self.kind == "prune_unstructured":
            return (
                f"{100 * self.amount:g}% of projection weights pruned ({'per matrix' if self.scope == 'layer' else 'global'}, L1)"
            )
        return f"heads pruned: {', '.join(self.heads) or 'none'}"


def pruned_modules(model: LoadedModel) -> list[tuple[str, torch.nn.Module]]:
    """The attention and MLP projections that magnitude pruning thins, by their Hugging Face names."""
    found = []
    for name, module in model.hf_model.named_modules():
        if name.rsplit(".", 1)[-1] not in PRUNED_MODULES:
            continue
        module = getattr(module, "_original_component", module)  # the bridge wraps each Hugging Face projection
        if isinstance(module.__dict__.get("_parameters", {}).get("weight"), torch.nn.Parameter):
            found.append((name, module))
    return found


def sparsity(model: LoadedModel) -> float:
    """The fraction of the pruned projections' weights that are exactly zero."""
    weights = [module.weight for _, module in pruned_modules(model)]
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


def is_quantised(model: LoadedModel) -> bool:
    """Whether any of the model's weights is a quantised tensor (torchao's int8/int4), not a plain one."""
    return any(type(p.data) not in (torch.Tensor, torch.nn.Parameter) for p in model.hf_model.parameters())


def require_plain_weights(model: LoadedModel, what: str) -> None:
    """Refuse, with what to do instead, work that reads or rewrites weight matrices of a quantised variant."""
    if is_quantised(model):
        raise InputError(
            f"{what}: it needs the weight matrices as plain tensors, and this model's are quantised ({model.info.name}). "
            "Run it on the original model, or on a bf16 or pruned variant."
        )


def make_variant(model: LoadedModel, variant: Variant) -> LoadedModel:
    """A copy of ``model`` shrunk as ``variant`` says; the original is not touched."""
    require_plain_weights(model, "Making a compressed variant")
    dtype = torch.bfloat16 if variant.kind == "bf16" else None
    with intervene(model):  # nobody's hooks are on the bridge while it is copied
        memo: dict[int, object] = {}
        for parameter in model.bridge.parameters():
            copied = parameter.detach().to(dtype) if dtype is not None else parameter.detach().clone()
            # as the original's: gradient methods (attribution patching, EAP) need activations that track them
            memo[id(parameter)] = torch.nn.Parameter(copied, requires_grad=parameter.requires_grad)
        bridge = copy.deepcopy(model.bridge, memo)
    digest = hashlib.sha256(f"{model.info.weights_sha256}/{variant!r}".encode()).hexdigest()
    info = dataclasses.replace(model.info, weights_sha256=digest, name=f"{model.info.name} ({variant.describe()})",
                               dtype=str(dtype).removeprefix("torch.") if dtype is not None else model.info.dtype)  # fmt: skip
    shrunk = LoadedModel(bridge, model.tokenizer, info, model.folder)
    shrunk.lock = model.lock
    with torch.no_grad():
        if variant.kind == "prune_unstructured" and variant.amount > 0:
            _prune_magnitude(shrunk, variant.amount, variant.scope)
        elif variant.kind == "prune_heads":
            _prune_heads(shrunk, variant.heads)
    if variant.kind in QUANTISED:
        _quantise(shrunk, variant.kind)
    return shrunk


def _quantise(model: LoadedModel, kind: str) -> None:
    """Quantise every attention and MLP projection once (the bridge reaches each through two paths)."""
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
        quantize_,
    )
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_primitives import MappingType

    config = {
        "int8_weight": Int8WeightOnlyConfig,
        "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
        "int4_weight": lambda: IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(INT4_GROUP),
                                                    mapping_type=MappingType.ASYMMETRIC),
    }[kind]()  # fmt: skip
    targets = {id(module) for _, module in pruned_modules(model) if isinstance(module, torch.nn.Linear)}
    done: set[int] = set()

    def chosen(module: torch.nn.Module, _name: str) -> bool:
        if id(module) in targets and id(module) not in done:
            done.add(id(module))
            return True
        return False

    quantize_(model.hf_model, config, filter_fn=chosen)


def weight_bytes(model: LoadedModel) -> int:
    """Bytes the model's weights occupy, counted from the storages that really hold them (a quantised weight is its
    int8/int4 data plus scales and zero points), each storage once (tied weights share one)."""
    seen: set[int] = set()
    total = 0

    def count(tensor: torch.Tensor) -> None:
        nonlocal total
        flatten = getattr(type(tensor), "__tensor_flatten__", None)
        if flatten is not None and type(tensor) is not torch.Tensor and type(tensor) is not torch.nn.Parameter:
            names, _ = tensor.__tensor_flatten__()
            for name in names:
                count(getattr(tensor, name))
            return
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()

    for parameter in model.hf_model.parameters():
        count(parameter.data if isinstance(parameter, torch.nn.Parameter) else parameter)
    return total


def _prune_magnitude(model: LoadedModel, amount: float, scope: str) -> None:
    modules = pruned_modules(model)
    if scope == "global":
        prune.global_unstructured([(m, "weight") for _, m in modules], pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for _, module in modules:
            prune.l1_unstructured(module, "weight", amount=amount)
    for _, module in modules:
        prune.remove(module, "weight")  # the mask becomes the weight itself: no hook, no extra parameter left behind


def _prune_heads(model: LoadedModel, heads: tuple[str, ...]) -> None:
    info = model.info
    for label in heads:
        component = Component.from_label(label)
        if not (0 <= component.layer < info.n_layers and 0 <= component.index < info.n_heads):
            raise InputError(f"{label} is not a head of {info.name} ({info.n_layers} layers × {info.n_heads} heads).")
        attention = model.bridge.blocks[component.layer].attn._original_component
        output = getattr(attention, "o_proj", None) or attention.c_proj
        output = getattr(output, "_original_component", output)
        columns = slice(component.index * info.d_head, (component.index + 1) * info.d_head)
        if isinstance(output, torch.nn.Linear):  # [d_model, heads * d_head]
            output.weight[:, columns] = 0
        else:  # GPT-2's Conv1D stores the transpose: [heads * d_head, d_model]
            output.weight[columns, :] = 0


def least_important_heads(scores, n: int) -> tuple[str, ...]:
    """The ``n`` heads with the smallest absolute score in a Circuits page head result (``values[layer, head]``), for
    structured pruning of what a task uses least. Give it a zero-ablation sweep: patching scores say which heads carry
    the *difference* between two prompts, not which ones the answer needs (a head can matter and patch to zero)."""
    values = np.abs(np.nan_to_num(np.asarray(scores.values, dtype=float), nan=0.0))
    if not 0 <= n <= values.size:
        raise InputError(f"Choose between 0 and {values.size} heads to prune (got {n}).")
    order = np.argsort(values, axis=None, kind="stable")[:n]
    return tuple(head_label(*divmod(int(i), values.shape[1])) for i in order)
