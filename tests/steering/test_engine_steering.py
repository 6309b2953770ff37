"""Steering through the engine: eight requests with different vectors, coefficients, layers and position modes,
all submitted at once, each equal to its solo run under ``steer()`` (the hook-context path)."""

from __future__ import annotations

import pytest

from interp import generate
from interp.engine import Engine, GenerationRequest
from interp.hooks import count_hooks
from interp.tokens import tokenize
from steering.apply import steer, steering_additions
from tests.steering.test_vector import make

PROMPTS = ["I think the weather today is", "My favourite food", "When Mary and John went to the store, John gave"]


def test_eight_concurrent_steered_requests_each_equal_their_solo_run(tiny_model):
    model = tiny_model
    settings = [  # (vector, coefficient, layers, positions, prompt): every request different
        (make(model, layers=(0, 1), seed=i, scale=2.0), (-1) ** i * (1.0 + 0.5 * i), [i % 2],
         ("all", "prompt", "generated")[i % 3], PROMPTS[i % 3])
        for i in range(8)
    ]  # fmt: skip
    engine = Engine(model)
    try:
        streams = []
        for vector, coefficient, layers, mode, prompt in settings:
            additions = steering_additions(model, vector, coefficient, layers=layers, positions=mode)
            request = GenerationRequest(prompt, tuple(tokenize(model, prompt)), max_new_tokens=10, stop_at_eos=False,
                                        additions=additions)  # fmt: skip
            streams.append((engine.submit(request), vector, coefficient, layers, mode, prompt))
        texts = set()
        for stream, vector, coefficient, layers, mode, prompt in streams:
            with steer(model, vector, coefficient, layers=layers, positions=mode):
                alone = generate(model, prompt, max_new_tokens=10, stop_at_eos=False)
            batched = stream.result(timeout=120)[0]
            assert batched.token_ids == alone.token_ids, (coefficient, layers, mode)
            texts.add(batched.token_ids)
        assert len(texts) > 3, "different settings must steer differently"
    finally:
        engine.close()
    assert count_hooks(model) == 0


def test_engine_additions_refuse_what_steer_refuses(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    with pytest.raises(Exception, match="no direction at layer"):
        steering_additions(tiny_llama, vector, 1.0, layers=[0])
    with pytest.raises(Exception, match="coefficient"):
        steering_additions(tiny_llama, vector, float("nan"))
