"""Conditional steering (CAST) on the tiny Llama, against hand computations from a capture hook.

The tiny model's random weights know no topics, so the two prompt classes differ by construction: they are made of
disjoint letters, hence disjoint tokens. Nothing asserts that the condition separates them; every check compares
with the same rule computed by hand.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from interp import generate
from interp.engine import Engine, GenerationRequest
from interp.errors import InputError
from interp.hooks import count_hooks, intervene
from interp.tokens import tokenize
from steering.apply import steer, steering_additions
from steering.conditional import (
    FOOD_PROMPTS,
    OTHER_PROMPTS,
    ConditionCheck,
    condition_accuracy,
    condition_direction,
    conditional_additions,
    fit_threshold,
)
from tests.steering.test_vector import make

ON = ["abbacab", "cabbed", "deadbeef", "faded", "baccab", "ebbed"]  # letters a-f only
OFF = ["xyzzy", "rusty", "tryst", "wryly", "mossy", "sultry"]  # no letter of a-f
LAYER = 1


def hand_mean(model, prompt: str, layer: int) -> torch.Tensor:
    """The prompt's resid_pre at ``layer``, captured by a hook and averaged over its tokens."""
    captured = []

    def keep(activation, site):
        captured.append(activation.detach().float().clone())

    with intervene(model, [(f"blocks.{layer}.hook_resid_pre", keep)]), torch.inference_mode():
        model.bridge(torch.tensor([tokenize(model, prompt)], device=model.device))
    return captured[0][0].mean(dim=0)  # [pos, d_model] -> [d_model]


def hand_projection(model, direction: torch.Tensor, prompt: str, layer: int = LAYER) -> float:
    mean = hand_mean(model, prompt, layer)
    return float(mean @ direction / (mean.norm() * direction.norm()))


def test_direction_is_the_unit_mean_difference_of_the_captured_means(tiny_llama):
    condition = condition_direction(tiny_llama, ON, OFF, layer=LAYER)
    on = torch.stack([hand_mean(tiny_llama, p, LAYER) for p in ON]).mean(dim=0)
    off = torch.stack([hand_mean(tiny_llama, p, LAYER) for p in OFF]).mean(dim=0)
    expected = (on - off) / (on - off).norm()
    torch.testing.assert_close(condition.direction, expected, atol=1e-5, rtol=1e-5)
    assert (condition.layer, condition.n_on, condition.n_off) == (LAYER, len(ON), len(OFF))


def test_projection_and_fires_follow_the_hand_cosine(tiny_llama):
    direction = condition_direction(tiny_llama, ON, OFF, layer=LAYER).direction
    for prompt in [*ON, *OFF, "The Eiffel Tower is in Paris."]:
        expected = hand_projection(tiny_llama, direction, prompt)
        check = ConditionCheck(direction, LAYER, threshold=expected - 1e-4)
        assert check.projection(tiny_llama, prompt) == pytest.approx(expected, abs=1e-5)
        assert check.fires(tiny_llama, prompt)
        assert not ConditionCheck(direction, LAYER, threshold=expected + 1e-4).fires(tiny_llama, prompt)


def test_fitted_threshold_is_the_most_accurate_midpoint(tiny_llama):
    # Fitted on mixed-up labels too, so that the best midpoint is not trivially a perfect split.
    for on, off in [(ON, OFF), (ON[:3] + OFF[:3], ON[3:] + OFF[3:])]:
        condition = condition_direction(tiny_llama, on, off, layer=LAYER)
        check = fit_threshold(tiny_llama, condition, on, off)
        on_p = [hand_projection(tiny_llama, condition.direction, p) for p in on]
        off_p = [hand_projection(tiny_llama, condition.direction, p) for p in off]
        values = sorted(on_p + off_p)
        midpoints = [(a + b) / 2 for a, b in itertools.pairwise(values)]

        def accuracy(threshold, on_p=on_p, off_p=off_p):
            return (sum(p > threshold for p in on_p) + sum(p <= threshold for p in off_p)) / (len(on_p) + len(off_p))

        best = max(accuracy(t) for t in midpoints)
        assert min(abs(check.threshold - t) for t in midpoints) < 1e-5
        assert accuracy(check.threshold) == best
        assert condition_accuracy(check, tiny_llama, on, off) == best


def test_in_one_engine_batch_only_the_prompts_the_condition_selects_are_steered(tiny_llama):
    model = tiny_llama
    prompts = [ON[0], OFF[0], ON[1], OFF[1]]
    direction = condition_direction(model, ON, OFF, layer=LAYER).direction
    projections = sorted(hand_projection(model, direction, p) for p in prompts)
    # A threshold between the 2nd and 3rd projections: exactly two of the four prompts fire, by construction.
    check = ConditionCheck(direction, LAYER, threshold=(projections[1] + projections[2]) / 2)
    vector = make(model, layers=(0, 1), seed=3, scale=4.0)
    engine = Engine(model)
    try:
        streams = []
        for prompt in prompts:
            additions = conditional_additions(model, check, prompt, vector, 2.0, layers=[1])
            request = GenerationRequest(prompt, tuple(tokenize(model, prompt)), max_new_tokens=8, stop_at_eos=False,
                                        additions=additions)  # fmt: skip
            streams.append((prompt, engine.submit(request)))
        fired = []
        for prompt, stream in streams:
            batched = stream.result(timeout=120)[0]
            unsteered = generate(model, prompt, max_new_tokens=8, stop_at_eos=False)
            if hand_projection(model, direction, prompt) > check.threshold:
                fired.append(prompt)
                with steer(model, vector, 2.0, layers=[1]):
                    steered = generate(model, prompt, max_new_tokens=8, stop_at_eos=False)
                assert batched.token_ids == steered.token_ids, prompt
                assert steered.token_ids != unsteered.token_ids, "the vector must change what it steers"
            else:
                assert batched.token_ids == unsteered.token_ids, prompt
        assert len(fired) == 2
    finally:
        engine.close()
    assert count_hooks(model) == 0


def test_additions_are_the_vectors_when_the_condition_fires_and_none_otherwise(tiny_llama):
    direction = condition_direction(tiny_llama, ON, OFF, layer=LAYER).direction
    vector = make(tiny_llama, layers=(0, 1), seed=1)
    always, never = ConditionCheck(direction, LAYER, -1.0), ConditionCheck(direction, LAYER, 1.0)
    expected = steering_additions(tiny_llama, vector, 1.5, positions="prompt")
    got = conditional_additions(tiny_llama, always, ON[0], vector, 1.5, positions="prompt")
    assert [(a.hook_name, a.positions) for a in got] == [(a.hook_name, a.positions) for a in expected]
    assert all(torch.equal(a.delta, b.delta) for a, b in zip(got, expected, strict=True))
    assert conditional_additions(tiny_llama, never, ON[0], vector, 1.5) == ()
    with pytest.raises(InputError, match="coefficient"):  # checked even where the condition does not fire
        conditional_additions(tiny_llama, never, ON[0], vector, float("nan"))


def test_bad_inputs_say_what_to_fix(tiny_llama):
    n_layers = tiny_llama.info.n_layers
    with pytest.raises(InputError, match="at least one"):
        condition_direction(tiny_llama, [], OFF, layer=LAYER)
    with pytest.raises(InputError, match="at least one"):
        condition_direction(tiny_llama, ON, [], layer=LAYER)
    with pytest.raises(InputError, match="list of texts"):
        condition_direction(tiny_llama, "abba", OFF, layer=LAYER)
    for layer in (-1, n_layers):
        with pytest.raises(InputError, match="does not exist"):
            condition_direction(tiny_llama, ON, OFF, layer=layer)
    condition = condition_direction(tiny_llama, ON, OFF, layer=LAYER)
    with pytest.raises(InputError, match="at least one"):
        fit_threshold(tiny_llama, condition, ON, [])
    with pytest.raises(InputError, match="does not exist"):
        ConditionCheck(condition.direction, n_layers, 0.0).projection(tiny_llama, ON[0])
    with pytest.raises(InputError, match="d_model"):
        ConditionCheck(torch.ones(tiny_llama.info.d_model + 1), LAYER, 0.0).projection(tiny_llama, ON[0])
    with pytest.raises(InputError, match="threshold"):
        ConditionCheck(condition.direction, LAYER, float("nan"))
    with pytest.raises(InputError, match="non-zero"):
        ConditionCheck(torch.zeros(tiny_llama.info.d_model), LAYER, 0.0)


def test_the_built_in_example_is_two_labelled_sets_of_ten_distinct_prompts():
    assert len(FOOD_PROMPTS) == len(OTHER_PROMPTS) == 10
    assert len(set(FOOD_PROMPTS) | set(OTHER_PROMPTS)) == 20
