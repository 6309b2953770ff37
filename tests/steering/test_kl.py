"""KL damage: 0 without steering, equal to a hand computation, counted only over the generated positions."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache

from interp import InputError, generate, intervene
from interp.forward import run_logits
from interp.tokens import tokenize
from steering.apply import steering_hooks
from steering.kl import KLDamage, mean_kl
from tests.steering.test_vector import make

PROMPTS = ("When Mary and John went to the store, John gave a drink to", "I think the weather")


def continuations(model, hooks, n_tokens=6):
    return [generate(model, p, max_new_tokens=n_tokens, stop_at_eos=False, hooks=hooks).token_ids for p in PROMPTS]


def full_pass_kl(model, prompt, continuation, hooks):
    """The reference: one uncached forward pass over prompt + continuation with and without the hooks, then
    torch.distributions' KL at the positions that predict the continuation's tokens."""
    prompt_ids = tokenize(model, prompt)
    tokens = torch.tensor([prompt_ids + list(continuation)])
    plain = run_logits(model, tokens)[0].double()
    steered = run_logits(model, tokens, hooks)[0].double()
    positions = slice(len(prompt_ids) - 1, len(prompt_ids) + len(continuation) - 1)
    p = torch.distributions.Categorical(logits=plain[positions])
    q = torch.distributions.Categorical(logits=steered[positions])
    return torch.distributions.kl_divergence(p, q)


def stepwise_log_probs(model, prompt, continuation, hooks):
    """The reference for position-dependent hooks: decode one token at a time on a KV cache, as generation does."""
    prompt_ids = tokenize(model, prompt)
    rows = []
    with intervene(model, hooks), torch.inference_mode():
        cache = DynamicCache(config=model.hf_model.config)
        model.position_offset = 0
        rows.append(model.bridge(torch.tensor([prompt_ids], device=model.device), past_key_values=cache)[0, -1])
        for i, token in enumerate(continuation[:-1]):
            model.position_offset = len(prompt_ids) + i
            rows.append(model.bridge(torch.tensor([[token]], device=model.device), past_key_values=cache)[0, -1])
    return torch.log_softmax(torch.stack(rows).double(), dim=-1)


def explicit_kl(p_log, q_log):
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def test_without_steering_the_kl_is_exactly_zero(tiny_model):
    generated = continuations(tiny_model, None)
    for hooks in (None, []):
        damage = mean_kl(tiny_model, PROMPTS, generated, hooks)
        assert isinstance(damage, KLDamage) and damage.unit == "nats"
        assert damage.mean == 0.0 and damage.per_sample == (0.0, 0.0)
        assert all(value == 0.0 for values in damage.per_position for value in values)
        assert [len(values) for values in damage.per_position] == [len(c) for c in generated]


def test_kl_equals_a_hand_computation_over_the_generated_positions(tiny_model):
    hooks = steering_hooks(tiny_model, make(tiny_model, layers=(1,), scale=2.0), 1.0)
    generated = continuations(tiny_model, hooks)
    damage = mean_kl(tiny_model, PROMPTS, generated, hooks)
    references = [full_pass_kl(tiny_model, p, c, hooks) for p, c in zip(PROMPTS, generated, strict=True)]
    for got, reference in zip(damage.per_position, references, strict=True):
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), reference, rtol=1e-4, atol=1e-6)
    per_sample = [float(r.mean()) for r in references]
    assert damage.per_sample == pytest.approx(per_sample, rel=1e-4, abs=1e-6)
    assert damage.mean == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-4, abs=1e-6)
    assert damage.mean > 1e-3 and all(value > 0 for value in damage.per_sample)  # strong steering does damage


def test_stronger_steering_moves_the_distributions_further(tiny_llama):
    vector = make(tiny_llama, layers=(1,), scale=2.0)
    generated = continuations(tiny_llama, None, n_tokens=4)
    means = [mean_kl(tiny_llama, PROMPTS, generated, steering_hooks(tiny_llama, vector, c)).mean for c in (0.0, 0.3, 3.0)]
    assert means[0] == 0.0 < means[1] < means[2]


@pytest.mark.parametrize("positions", ["generated", "prompt"])
def test_steering_only_some_positions_is_measured_as_generation_ran_it(tiny_llama, positions):
    hooks = steering_hooks(tiny_llama, make(tiny_llama, layers=(1,), scale=2.0), 1.0, positions=positions)
    generated = continuations(tiny_llama, hooks, n_tokens=5)
    damage = mean_kl(tiny_llama, PROMPTS, generated, hooks)
    for prompt, continuation, got in zip(PROMPTS, generated, damage.per_position, strict=True):
        reference = explicit_kl(
            stepwise_log_probs(tiny_llama, prompt, continuation, None),
            stepwise_log_probs(tiny_llama, prompt, continuation, hooks),
        )
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), reference, rtol=1e-4, atol=1e-6)
        if positions == "generated":  # the first token came from the prompt pass, which this steering leaves alone
            assert got[0] == 0.0 and all(value > 0 for value in got[1:])
        else:  # the steered prompt reaches every later position through attention
            assert all(value > 0 for value in got)


def test_an_empty_continuation_is_nan_and_left_out_of_the_mean(tiny_llama):
    hooks = steering_hooks(tiny_llama, make(tiny_llama, layers=(1,), scale=2.0), 1.0)
    generated = continuations(tiny_llama, hooks, n_tokens=3)
    damage = mean_kl(tiny_llama, PROMPTS, [generated[0], ()], hooks)
    assert math.isnan(damage.per_sample[1]) and damage.per_position[1] == ()
    assert damage.mean == damage.per_sample[0] > 0
    single = mean_kl(tiny_llama, [tokenize(tiny_llama, PROMPTS[0])], [generated[0][:1]], hooks)  # prompt as ids
    assert len(single.per_position[0]) == 1 and single.mean == single.per_position[0][0]


@pytest.mark.parametrize(
    ("prompts", "continuations_", "message"),
    [
        ((), (), "at least one prompt"),
        (PROMPTS, ([1, 2],), "one continuation per prompt"),
        (PROMPTS[:1], ([10**9],), "outside"),
        (PROMPTS[:1], ([-1],), "outside"),
        (PROMPTS[:1], ("hello",), "list of token ids"),
        (PROMPTS[:1], ((),), "None of the continuations"),
    ],
)
def test_bad_input_is_an_input_error(tiny_llama, prompts, continuations_, message):
    with pytest.raises(InputError, match=message):
        mean_kl(tiny_llama, prompts, continuations_, None)
