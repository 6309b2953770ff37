"""Adapters for known mismatches between the libraries we stand on.

Each adapter here fixes one measured incompatibility, is applied once when a model is loaded,
touches only that model instance (never a library class), and has a test that fails if the
problem returns.

KV cache keyword (TransformerLens 4.3 x transformers >= 5.2x)
-------------------------------------------------------------
transformers renamed the cache argument of its attention modules from ``past_key_values`` to
``cache`` (Llama's decoder layer now calls ``self_attn(..., cache=cache)``). TransformerLens 4.3's
``AttentionBridge._update_kv_cache`` reads only ``past_key_values`` and ``layer_past``, so on a
bridged model the cache is never written: every decode step attends to itself alone and greedy
generation degenerates (SmolLM2: ``'I love dogs because they-------------------'``). Because the
bridge swaps its components into the Hugging Face module tree, the wrapped model's own
``generate`` breaks the same way. :func:`adapt_attention_cache_kwarg` gives each attention bridge
of one model an ``_update_kv_cache`` that also accepts ``cache=``; when TransformerLens learns
the new name, the adapter becomes a no-op (it only fills ``past_key_values`` when that is absent).
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge


def _update_kv_cache_accepting_cache_kwarg(
    self: AttentionBridge, k: torch.Tensor, v: torch.Tensor, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    cache = kwargs.get("cache")
    if cache is not None and kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None:
        kwargs["past_key_values"] = cache
    return type(self)._update_kv_cache(self, k, v, **kwargs)


def adapt_attention_cache_kwarg(bridge: TransformerBridge) -> int:
    """Make every attention bridge of ``bridge`` fill the KV cache that transformers passes as ``cache=``.

    Binds a method on each instance (not the class), so other bridges in the process are
    untouched and a deep copy of the model carries the adapter with it.

    Returns:
        How many attention components were adapted.
    """
    adapted = 0
    for module in bridge.modules():
        if isinstance(module, AttentionBridge):
            module._update_kv_cache = types.MethodType(_update_kv_cache_accepting_cache_kwarg, module)
            adapted += 1
    return adapted


# Our decode loop hands the bridge ``past_key_values`` (the bridge's own cache argument), which
# transformers 5.2x forwards to the model and then warns about on every step; the warning is for
# the rename handled above, so it carries nothing for users.
warnings.filterwarnings("ignore", message=r"`past_key_values` is deprecated", category=FutureWarning)
