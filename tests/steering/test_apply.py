"""steer(): additions through the hook context, position modes, identities, concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from interp import generate, intervene
from interp.forward import run_logits
from interp.hooks import count_hooks
from interp.tokens import as_batch, tokenize
from steering.apply import steer
from steering.datasets import ContrastPairs
from steering.make import actadd, mean_difference, pca_direction, text_activations
from tests.steering.test_vector import make

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_zero_coefficient_or_zero_vector_changes_nothing(tiny_model):
    baseline = generate(tiny_model, PROMPT, max_new_tokens=12, stop_at_eos=False)
    vector = make(tiny_model, layers=(1,), scale=5.0)
    with steer(tiny_model, vector, 0.0) as run:
        assert generate(tiny_model, PROMPT, max_new_tokens=12, stop_at_eos=False).token_ids == baseline.token_ids
    assert run.fired("blocks.1.hook_resid_pre") > 0
    with steer(tiny_model, vector * 0.0, 1.0):
        assert generate(tiny_model, PROMPT, max_new_tokens=12, stop_at_eos=False).token_ids == baseline.token_ids
    assert count_hooks(tiny_model) == 0


def test_steering_adds_exactly_the_scaled_direction(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    ids = as_batch(tokenize(tiny_llama, PROMPT), tiny_llama)
    seen = {}

    def capture(activation, site):
        seen[site.name] = activation.clone()

    with intervene(tiny_llama, {"blocks.1.hook_resid_pre": capture}):
        run_logits(tiny_llama, ids)
    plain = seen["blocks.1.hook_resid_pre"]
    with steer(tiny_llama, vector, 3.0), intervene(tiny_llama, {"blocks.1.hook_resid_pre": capture}):
        run_logits(tiny_llama, ids)
    torch.testing.assert_close(seen["blocks.1.hook_resid_pre"] - plain, (3.0 * vector.direction(1)).expand_as(plain))


def test_position_modes_touch_only_their_positions(tiny_llama):
    vector = make(tiny_llama, layers=(1,), scale=10.0)
    added = {}

    def record(mode):
        steps = []

        def probe(activation, site):
            steps.append((site.position_offset, activation.clone()))

        # the probe runs after the steering hook at the same point, so it sees what was added
        with steer(tiny_llama, vector, 1.0, positions=mode), intervene(tiny_llama, {"blocks.1.hook_resid_pre": probe}):
            generate(tiny_llama, PROMPT, max_new_tokens=3, stop_at_eos=False)
        return steps

    for mode in ("all", "prompt", "generated"):
        added[mode] = record(mode)
    plain = []

    def probe(activation, site):
        plain.append((site.position_offset, activation.clone()))

    with intervene(tiny_llama, {"blocks.1.hook_resid_pre": probe}):
        generate(tiny_llama, PROMPT, max_new_tokens=3, stop_at_eos=False)
    prompt_changed = not torch.equal(added["prompt"][0][1], plain[0][1])
    assert prompt_changed and torch.equal(added["generated"][0][1], plain[0][1])
    assert not torch.equal(added["generated"][1][1], plain[1][1])
    assert not torch.equal(added["all"][0][1], plain[0][1]) and not torch.equal(added["all"][1][1], plain[1][1])


def test_several_vectors_at_once_add_up(tiny_llama):
    a, b = make(tiny_llama, layers=(1,), seed=1), make(tiny_llama, layers=(1,), seed=2)
    ids = as_batch(tokenize(tiny_llama, PROMPT), tiny_llama)
    with steer(tiny_llama, [a, b], [1.0, 2.0]):
        both = run_logits(tiny_llama, ids)
    with steer(tiny_llama, a + 2.0 * b, 1.0):
        combined = run_logits(tiny_llama, ids)
    torch.testing.assert_close(both, combined, atol=1e-5, rtol=1e-5)


def test_two_sessions_steering_opposite_ways_at_once_get_their_own_results(tiny_llama):
    vector = make(tiny_llama, layers=(1,), scale=4.0)

    def steered(coefficient):
        with steer(tiny_llama, vector, coefficient):
            return generate(tiny_llama, PROMPT, max_new_tokens=10, stop_at_eos=False).token_ids

    expected = {c: steered(c) for c in (1.0, -1.0)}
    assert expected[1.0] != expected[-1.0]
    results: dict = {}
    barrier = threading.Barrier(2)

    def session(coefficient):
        barrier.wait()
        for _ in range(3):
            results.setdefault(coefficient, []).append(steered(coefficient))

    threads = [threading.Thread(target=session, args=(c,)) for c in (1.0, -1.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r == expected[1.0] for r in results[1.0]) and all(r == expected[-1.0] for r in results[-1.0])
    assert count_hooks(tiny_llama) == 0


PAIRS = ContrastPairs("toy", ("I love dogs", "When Mary went", "the store"), ("I hate dogs", "When John went", "the drink"))


def test_mean_difference_is_the_mean_of_recorded_differences(tiny_llama):
    vector = mean_difference(tiny_llama, PAIRS, layers=[1])
    positive = text_activations(tiny_llama, PAIRS.positive, [1])
    negative = text_activations(tiny_llama, PAIRS.negative, [1])
    torch.testing.assert_close(vector.direction(1), (positive - negative).mean(dim=0)[0])
    assert vector.weights_sha256 == tiny_llama.info.weights_sha256 and "3 pairs" in vector.source


def test_last_token_activation_ignores_padding(tiny_llama):
    short_alone = text_activations(tiny_llama, ["I love"], [1])
    short_in_batch = text_activations(tiny_llama, ["I love", "When Mary and John went to the store"], [1])[:1]
    torch.testing.assert_close(short_alone, short_in_batch, atol=1e-5, rtol=0)


def test_pca_direction_points_from_negative_to_positive(tiny_llama):
    vector = pca_direction(tiny_llama, PAIRS, layers=[0, 1])
    differences = text_activations(tiny_llama, PAIRS.positive, [0, 1]) - text_activations(tiny_llama, PAIRS.negative, [0, 1])
    for i, layer in enumerate((0, 1)):
        assert float((differences[:, i] @ vector.direction(layer)).mean()) > 0


def test_actadd_is_the_pairs_difference_averaged_over_positions(tiny_llama):
    vector = actadd(tiny_llama, "Love", "Hate", layers=[1])
    assert vector.method == "actadd" and vector.direction(1).shape == (tiny_llama.info.d_model,)
    assert vector.norm() > 0


def test_bad_settings_are_explained(tiny_llama):
    from interp import InputError

    with pytest.raises(InputError, match="do not exist"):
        mean_difference(tiny_llama, PAIRS, layers=[9])
    with pytest.raises(InputError, match="Unknown positions"):
        with steer(tiny_llama, make(tiny_llama), 1.0, positions="middle"):
            pass


def test_meaning_views_read_the_direction(tiny_llama):
    from steering.meaning import layer_cosines, token_effects, token_projections

    vector = make(tiny_llama, layers=(0, 1))
    effect = token_effects(tiny_llama, vector, 1, k=5)
    assert len(effect.promoted) == len(effect.suppressed) == 5
    assert effect.promoted[0][1] >= effect.promoted[-1][1] > 0 > effect.suppressed[0][1]
    # The unembedding of the direction itself: the top promoted token's logit effect is the largest.
    unembed = tiny_llama.hf_model.get_output_embeddings().weight.detach()
    weight = tiny_llama.bridge.ln_final.original_component.weight.detach()
    raw = unembed @ (vector.direction(1) * weight)
    assert effect.promoted[0][0] == tiny_llama.tokenizer.decode([int(raw.argmax())]).replace(" ", "␣")
    cosines = layer_cosines(vector)
    assert cosines.shape == (2, 2) and np.allclose(np.diag(cosines), 1.0, atol=1e-6)
    projection = token_projections(tiny_llama, vector, 1, PROMPT)
    assert len(projection.values) == len(tokenize(tiny_llama, PROMPT))


def test_continuation_preference_moves_with_steering(tiny_llama):
    from steering.scores import continuation_preference

    mary = tiny_llama.tokenizer(" Mary", add_special_tokens=False).input_ids[0]
    john = tiny_llama.tokenizer(" John", add_special_tokens=False).input_ids[0]
    unembed = tiny_llama.hf_model.get_output_embeddings().weight.detach()
    towards_mary = make(tiny_llama, layers=(1,))
    towards_mary = type(towards_mary)(
        layers=(1,),
        directions=(unembed[mary] - unembed[john])[None],
        d_model=towards_mary.d_model,
        model_name=towards_mary.model_name,
    )
    plain = continuation_preference(tiny_llama, PROMPT, " Mary", " John")
    with steer(tiny_llama, towards_mary, 5.0):
        steered = continuation_preference(tiny_llama, PROMPT, " Mary", " John")
    assert steered > plain
