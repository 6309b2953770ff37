"""Attention patterns against Hugging Face's output_attentions; head scores on known structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import InputError
from interp.attention import SCORE_NAMES, attention_patterns, compute_head_scores, head_scores, probe_tokens
from interp.hooks import count_hooks, intervene
from interp.loading import load_hf_model
from interp.tokens import as_batch, tokenize

PROMPT = "When Mary and John went to the store, John gave a drink to Mary. " * 2


def _hf_attentions(model, prompt: str) -> np.ndarray:
    reference, _ = load_hf_model(model.folder)
    ids = as_batch(tokenize(model, prompt), model)
    with torch.no_grad():
        out = reference(ids, output_attentions=True)
    return torch.stack(out.attentions)[:, 0].numpy()  # [layer, head, q, k]


def _check_patterns(model, prompt):
    result = attention_patterns(model, prompt)
    n = len(tokenize(model, prompt))
    assert result.patterns.shape == (model.info.n_layers, model.info.n_heads, n, n)
    assert len(result.tokens) == n
    np.testing.assert_allclose(result.patterns, _hf_attentions(model, prompt), atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.patterns.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(result.patterns, k=1) == 0), "a query attended to a later key"
    assert count_hooks(model) == 0


def test_tiny_patterns_equal_hugging_face(tiny_model):
    _check_patterns(tiny_model, PROMPT)


def test_default_patterns_equal_hugging_face_with_grouped_query_attention(default_model):
    assert default_model.info.n_kv_heads < default_model.info.n_heads
    _check_patterns(default_model, PROMPT)


def test_display_limit_gives_a_clear_message(tiny_llama):
    with pytest.raises(InputError, match="at most 8"):
        attention_patterns(tiny_llama, PROMPT, max_tokens=8)


def test_head_frame_lists_the_lower_triangle(tiny_llama):
    result = attention_patterns(tiny_llama, "I love dogs")
    frame = result.to_frame(1, 2)
    n = len(result.tokens)
    assert len(frame) == n * (n + 1) // 2
    assert frame["attention"].sum() == pytest.approx(n, abs=1e-4)


def test_probe_is_random_tokens_repeated_and_reproducible(tiny_llama):
    first = probe_tokens(tiny_llama, n_sequences=4, repeat_length=10, seed=3)
    assert torch.equal(first[:, :10], first[:, 10:])
    assert torch.equal(first, probe_tokens(tiny_llama, n_sequences=4, repeat_length=10, seed=3))
    assert not set(first.flatten().tolist()) & set(tiny_llama.tokenizer.all_special_ids)


def test_head_scores_are_reproducible_fractions(tiny_llama):
    scores = head_scores(tiny_llama, seed=5, n_sequences=4, repeat_length=16)
    for name in SCORE_NAMES:
        values = scores.score(name)
        assert values.shape == (2, 4)
        assert np.all((values >= 0) & (values <= 1))
    again = compute_head_scores(tiny_llama, seed=5, n_sequences=4, repeat_length=16)
    for name in SCORE_NAMES:
        assert np.array_equal(again.score(name), scores.score(name))
    assert head_scores(tiny_llama, seed=5, n_sequences=4, repeat_length=16) is scores  # cached


def test_random_tiny_model_has_no_induction_head(tiny_model):
    scores = head_scores(tiny_model)
    assert scores.induction.max() < 0.4


def test_default_model_has_induction_heads(default_model):
    scores = head_scores(default_model)
    _, _, value = scores.top_heads("induction", 1)[0]
    assert value > 0.4
    # A random head attends to one of ~48 earlier keys: ~0.02 on the induction offset.
    assert np.median(scores.induction) < 0.1
    frame = scores.to_frame()
    assert len(frame) == 30 * 9 and frame["induction"].max() == pytest.approx(value)


@pytest.mark.parametrize("kind", ["previous_token", "induction", "duplicate_token", "first_token"])
def test_scores_find_a_planted_head(tiny_llama, kind):
    """Overwrite head 1.3's pattern with the exact pattern of one head type; its score must be ~1."""
    length = 12

    def planted_pattern(pattern, site):
        n = pattern.shape[-1]
        planted = torch.zeros(n, n)
        for q in range(n):
            if kind == "previous_token":
                key = max(q - 1, 0)
            elif kind == "induction":
                key = q - length + 1 if q >= length else 0
            elif kind == "duplicate_token":
                key = q - length if q >= length else 0
            else:
                key = 0
            planted[q, key] = 1
        pattern = pattern.clone()
        pattern[:, 3] = planted
        return pattern

    with intervene(tiny_llama, {"blocks.1.attn.hook_pattern": planted_pattern}):
        scores = compute_head_scores(tiny_llama, n_sequences=2, repeat_length=length)
    values = scores.score(kind)
    assert values[1, 3] == pytest.approx(1.0)
    assert values[1, 3] == values.max()
    assert head_scores(tiny_llama, n_sequences=2, repeat_length=length).score(kind)[1, 3] < 0.9  # unplanted
