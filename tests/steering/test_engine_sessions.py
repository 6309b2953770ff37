"""Eight sessions steering the real model at once, from eight threads, as the app's sessions do: each gets exactly
its solo result (the serial decode in its own thread, under steer()), and nothing is left on the model."""

from __future__ import annotations

import threading

import pytest

from interp.generation import generate_batch_serial
from interp.hooks import count_hooks
from steering import built_in, mean_difference
from steering.apply import steer
from steering.live import start_steered
from steering.runs import SteeringEvaluation

pytestmark = pytest.mark.real_model

PROMPT = "I think the weather today is"


def test_eight_sessions_steering_at_once_each_get_their_solo_result(default_model):
    model = default_model
    vector = mean_difference(model, built_in("sentiment"), layers=[4, 6], position="mean")
    settings = [((4, 6)[i % 2], (-1) ** i * (1.0 + 0.5 * i)) for i in range(8)]  # (layer, coefficient) per session
    specs = [
        SteeringEvaluation(vector.at_layers([layer]), layer, coefficient, prompts=(PROMPT,), n_samples=2, max_new_tokens=12,
                           temperature=0.8, seed=10 + i)
        for i, (layer, coefficient) in enumerate(settings)
    ]  # fmt: skip
    texts: dict[int, tuple[str, ...]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(specs))

    def session(i: int) -> None:
        try:
            barrier.wait(30)  # all eight submit together
            live = start_steered(model, specs[i])
            texts[i] = tuple(g.text for stream in live.streams for g in stream.result(timeout=600))
        except BaseException as error:  # reported below, with the session's number
            errors.append(error)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert not errors, errors
    for i, spec in enumerate(specs):
        with steer(model, spec.vector, spec.coefficient, layers=[spec.layer]):
            alone = generate_batch_serial(model, [PROMPT], max_new_tokens=12, n_samples=2, temperature=0.8, seed=spec.seed)[0]
        assert texts[i] == tuple(g.text for g in alone), (i, settings[i])
    assert len(set(texts.values())) == len(specs), "each session's own setting must show in its text"
    assert count_hooks(model) == 0
