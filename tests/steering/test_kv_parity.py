"""KV-cache parity: steered greedy generation with the cache equals the same run without one, token for token.

The reference re-runs the whole sequence (prompt + tokens so far) at every step with no cache and takes the argmax.
Without a cache every pass starts at position 0 (``position_offset`` is 0), so ``steer(..., positions="prompt")``
would steer every position and ``positions="generated"`` none: those two modes are expressed in the reference by a
hook that adds the vector at absolute positions ``< len(prompt)`` (prompt) or ``>= len(prompt)`` (generated), which
is what the cached modes mean — the prompt pass is steered (its keys and values reach later tokens through the
cache), or only the decode steps are.

Cached paths checked: the engine (``generate`` and a batch of prompts through ``generate_batch`` with per-request
hooks, which decode together with padding; per-request additions, as the live slider submits them) and the serial
loop inside ``steer(...)``.
"""

from __future__ import annotations

import pytest
import torch

from interp import generate, intervene
from interp.engine import GenerationRequest, engine_for
from interp.generation import SamplingSettings, generate_batch
from interp.tokens import tokenize
from steering.apply import steer, steering_additions, steering_hooks
from tests.steering.test_vector import make

PROMPTS = ("When Mary and John went to the store, John gave a drink to", "I love", "The store is")
N_TOKENS = 8


def positional_adder(delta: torch.Tensor, n_prompt: int, positions: str):
    """Adds ``delta`` in a full uncached pass at the prompt's positions, the generated ones, or all."""

    def add(activation, site):
        where = torch.arange(activation.shape[1])  # absolute positions: an uncached pass starts at 0
        chosen = {"all": where >= 0, "prompt": where < n_prompt, "generated": where >= n_prompt}[positions]
        return activation + chosen[None, :, None].to(activation.dtype) * delta.to(activation.dtype)

    return add


def uncached_greedy(model, prompt, vector, coefficient, positions, n_tokens=N_TOKENS):
    prompt_ids = tokenize(model, prompt)
    ids = list(prompt_ids)
    if positions == "all":  # steer() itself, with nothing cached: every pass sees every position at offset 0
        context = steer(model, vector, coefficient)
    else:
        hooks = {
            vector.hook_name(layer): positional_adder(coefficient * vector.direction(layer), len(prompt_ids), positions)
            for layer in vector.layers
        }
        context = intervene(model, hooks)
    with context, torch.inference_mode():
        for _ in range(n_tokens):
            logits = model.bridge(torch.tensor([ids], device=model.device))  # the whole sequence, no past_key_values
            ids.append(int(logits[0, -1].argmax()))
    return tuple(ids[len(prompt_ids) :])


def cached_runs(model, vector, coefficient, positions, n_tokens=N_TOKENS, prompts=PROMPTS):
    """Each cached path's greedy tokens per prompt."""
    hooks = steering_hooks(model, vector, coefficient, positions=positions)
    options = {"max_new_tokens": n_tokens, "temperature": 0.0, "stop_at_eos": False}
    runs = {"generate (engine)": [generate(model, p, hooks=hooks, **options).token_ids for p in prompts]}
    grouped = generate_batch(model, list(prompts), hooks=hooks, **options)
    runs["generate_batch (engine, batched)"] = [group[0].token_ids for group in grouped]
    additions = steering_additions(model, vector, coefficient, positions=positions)
    engine = engine_for(model)
    streams = [
        engine.submit(
            GenerationRequest(p, tuple(tokenize(model, p)), max_new_tokens=n_tokens, sampling=SamplingSettings(0.0),
                              stop_at_eos=False, additions=additions)
        )
        for p in prompts
    ]  # fmt: skip
    runs["engine additions"] = [stream.result()[0].token_ids for stream in streams]
    with steer(model, vector, coefficient, positions=positions):
        runs["serial, inside steer()"] = [generate(model, p, **options).token_ids for p in prompts]
    return runs


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_cached_steered_greedy_equals_the_uncached_run(tiny_model, positions):
    vector = make(tiny_model, layers=(0, 1), scale=1.5)
    reference = [uncached_greedy(tiny_model, p, vector, 1.0, positions) for p in PROMPTS]
    for path, tokens in cached_runs(tiny_model, vector, 1.0, positions).items():
        assert tokens == reference, path
    unsteered = [generate(tiny_model, p, max_new_tokens=N_TOKENS, stop_at_eos=False).token_ids for p in PROMPTS]
    assert reference != unsteered  # the steering changed the text, so equality is not the unsteered run's


def test_the_uncached_reference_tells_the_position_modes_apart(tiny_llama):
    vector = make(tiny_llama, layers=(0, 1), scale=1.5)
    runs = {mode: [uncached_greedy(tiny_llama, p, vector, 1.0, mode) for p in PROMPTS] for mode in ("all", "prompt", "generated")}
    assert len({tuple(tokens) for tokens in runs.values()}) == 3


def test_cached_steered_greedy_equals_the_uncached_run_on_the_default_model(default_model):
    vector = make(default_model, layers=(10,), seed=3, scale=0.6)  # norm ~14, a visible but not destructive push
    prompts = PROMPTS[:1]
    reference = [uncached_greedy(default_model, p, vector, 4.0, "all", n_tokens=20) for p in prompts]
    runs = cached_runs(default_model, vector, 4.0, "all", n_tokens=20, prompts=prompts)
    for path in ("generate (engine)", "serial, inside steer()"):
        assert runs[path] == reference, path
    assert reference != [generate(default_model, prompts[0], max_new_tokens=20, stop_at_eos=False).token_ids]
