"""Session-independent caches of core results (detached, on CPU) so reruns don't recompute.

The model parameter is named ``_model`` so Streamlit does not hash it; ``weights`` (its weights
hash) stands in for it in the cache key.
"""

from __future__ import annotations

import streamlit as st

from interp import LoadedModel
from interp.attention import AttentionResult, HeadScores, attention_patterns, head_scores
from interp.attribution import Attribution, Faithfulness, Target, attribute, faithfulness
from interp.lens import LensResult, logit_lens

DISPLAY_LIMIT = 256  # tokens: beyond this a pattern view is too dense to read and slow to draw


@st.cache_data(max_entries=32, show_spinner=False)
def cached_attention(_model: LoadedModel, weights: str, prompt: str) -> AttentionResult:
    return attention_patterns(_model, prompt, max_tokens=DISPLAY_LIMIT)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_head_scores(_model: LoadedModel, weights: str) -> HeadScores:
    return head_scores(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_lens(_model: LoadedModel, weights: str, prompt: str, target: str | None) -> LensResult:
    return logit_lens(_model, prompt, target or None, max_tokens=DISPLAY_LIMIT)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_attribution(
    _model: LoadedModel, weights: str, prompt: str, target: Target, method: str, options: tuple, budget: int, seed: int
) -> tuple[Attribution, Faithfulness]:
    result = attribute(_model, prompt, target, method, budget=budget, seed=seed, **dict(options))
    return result, faithfulness(_model, result)
