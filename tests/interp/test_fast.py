"""Fast mode's bf16 copy: its own weights (the fp32 model untouched), interventions still work, and its agreement
with fp32 is measured against the exact model's own choices."""

from __future__ import annotations

import torch

from interp.fast import fast_agreement, fast_copy
from interp.generation import generate_batch
from interp.hooks import count_hooks

PROMPTS = ["Hello there", "The cat sat on the mat and then", "A"]


def test_the_copy_is_bf16_and_leaves_the_exact_model_as_it_was(tiny_model):
    before = {name: p.detach().clone() for name, p in tiny_model.bridge.named_parameters()}
    fast = fast_copy(tiny_model)
    assert {p.dtype for p in fast.bridge.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in tiny_model.bridge.parameters()} == {torch.float32}
    for name, p in tiny_model.bridge.named_parameters():
        assert torch.equal(p, before[name]), name
    assert fast.lock is tiny_model.lock and fast.info.dtype == "bfloat16"  # one computation at a time on the cores


def test_the_copy_generates_and_takes_interventions(tiny_llama):
    fast = fast_copy(tiny_llama)
    plain = generate_batch(fast, PROMPTS[:1], max_new_tokens=8, temperature=0.0, stop_at_eos=False)[0][0]
    pushed = generate_batch(fast, PROMPTS[:1], max_new_tokens=8, temperature=0.0, stop_at_eos=False,
                            hooks=[("blocks.1.hook_resid_pre", lambda act, site: act + 50.0)])[0][0]  # fmt: skip
    assert len(plain.token_ids) == 8 and plain.token_ids != pushed.token_ids
    assert count_hooks(fast) == 0


def test_agreement_is_counted_against_the_exact_model(tiny_llama):
    fast = fast_copy(tiny_llama)
    agreement = fast_agreement(tiny_llama, fast, PROMPTS, n_tokens=8)
    assert agreement.n_prompts == 3 and 0.0 <= agreement.next_token_agreement <= 1.0
    assert fast_agreement(tiny_llama, tiny_llama, PROMPTS, n_tokens=8).next_token_agreement == 1.0  # itself: always
    assert "same next token" in agreement.describe()
