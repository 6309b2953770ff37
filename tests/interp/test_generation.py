"""Generation: KV-cached greedy decoding equals Hugging Face generate; sampling is reproducible."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from interp import InputError, generate, generate_samples
from interp.hooks import intervene
from interp.loading import load_hf_model
from interp.tokens import as_batch, tokenize

PROMPTS = ["I love dogs because", "The Eiffel Tower is in the city of", "Once upon a time", "def fib(n):"]


def _hf_greedy(model, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy continuation from an un-bridged copy of the same weights."""
    reference, tokenizer = load_hf_model(model.folder)
    ids = as_batch(tokenize(model, prompt), model)
    with torch.no_grad():
        out = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


def test_prefill_fills_the_kv_cache(tiny_model):
    """Regression guard for the TransformerLens x transformers `cache=` rename (interp.compat)."""
    ids = as_batch(tokenize(tiny_model, "I love dogs because"), tiny_model)
    cache = DynamicCache(config=tiny_model.hf_model.config)
    with intervene(tiny_model), torch.no_grad():
        tiny_model.bridge(ids, past_key_values=cache)
    assert cache.get_seq_length() == ids.shape[1]


def test_cached_steps_equal_a_full_forward(tiny_model):
    ids = as_batch(tokenize(tiny_model, "When Mary and John went to the store"), tiny_model)
    cache = DynamicCache(config=tiny_model.hf_model.config)
    with intervene(tiny_model), torch.no_grad():
        full = tiny_model.bridge(ids)
        prefix = tiny_model.bridge(ids[:, :-1], past_key_values=cache)
        last = tiny_model.bridge(ids[:, -1:], past_key_values=cache)
    torch.testing.assert_close(prefix, full[:, :-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(last[:, -1], full[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_tiny_greedy_equals_hugging_face_generate(tiny_model, prompt):
    ours = generate(tiny_model, prompt, max_new_tokens=24, stop_at_eos=False)
    assert list(ours.token_ids) == _hf_greedy(tiny_model, prompt, 24)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_greedy_equals_hugging_face_generate(default_model, prompt):
    ours = generate(default_model, prompt, max_new_tokens=32)
    reference = _hf_greedy(default_model, prompt, 32)
    assert list(ours.token_ids) == reference[: len(ours.token_ids)]
    assert ours.finish_reason == "eos" or len(ours.token_ids) == 32


def test_wrapped_hugging_face_generate_is_not_broken(default_model):
    """The bridge swaps its components into the HF module tree; HF's own generate must still work."""
    ids = as_batch(tokenize(default_model, "I love dogs because"), default_model)
    with intervene(default_model), torch.no_grad():
        out = default_model.hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False)
    assert out[0, ids.shape[1] :].tolist() == _hf_greedy(default_model, "I love dogs because", 20)
    assert "-----" not in default_model.tokenizer.decode(out[0])


def test_sampling_is_reproducible_and_seeds_differ(tiny_llama):
    first = generate(tiny_llama, "I love", max_new_tokens=16, temperature=1.0, seed=7, stop_at_eos=False)
    again = generate(tiny_llama, "I love", max_new_tokens=16, temperature=1.0, seed=7, stop_at_eos=False)
    other = generate(tiny_llama, "I love", max_new_tokens=16, temperature=1.0, seed=8, stop_at_eos=False)
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids
    assert first.seed == 7


def test_a_sample_does_not_depend_on_its_batch(tiny_llama):
    batch = generate_samples(tiny_llama, "I love", max_new_tokens=12, n_samples=3, temperature=1.0, seed=10, stop_at_eos=False)
    alone = generate(tiny_llama, "I love", max_new_tokens=12, temperature=1.0, seed=12, stop_at_eos=False)
    assert [g.seed for g in batch] == [10, 11, 12]
    assert batch[2].token_ids == alone.token_ids


def test_unseeded_sampling_records_its_seed(tiny_llama):
    drawn = generate(tiny_llama, "I love", max_new_tokens=8, temperature=1.0, stop_at_eos=False)
    replay = generate(tiny_llama, "I love", max_new_tokens=8, temperature=1.0, seed=drawn.seed, stop_at_eos=False)
    assert drawn.token_ids == replay.token_ids


def test_top_k_one_is_greedy(tiny_llama):
    greedy = generate(tiny_llama, "The Eiffel", max_new_tokens=10, stop_at_eos=False)
    top1 = generate(tiny_llama, "The Eiffel", max_new_tokens=10, temperature=1.5, top_k=1, seed=3, stop_at_eos=False)
    assert greedy.token_ids == top1.token_ids


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "Temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 10_000}, "reads at most"),
    ],
)
def test_bad_settings_get_clear_messages(tiny_llama, kwargs, message):
    with pytest.raises(InputError, match=message):
        generate(tiny_llama, "hello", **kwargs)
