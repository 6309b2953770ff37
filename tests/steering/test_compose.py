"""Composition: "together" is the summed vector applied with steer(), the table is the scorers on those texts, a vector
and its negation cancel exactly, and planted vectors move their own behaviours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import InputError
from interp.generation import generate_batch
from interp.serialise import dumps, loads
from steering.apply import steer
from steering.compose import Composition, CompositionItem, SteeringComposition, compose
from steering.scores import SCORERS, Scorer, distinct_n, topic_rate
from steering.vector import SteeringVector
from tests.steering.test_vector import make

PROMPTS = ("I love", "The store is", "When Mary")
OPTIONS = {"n_samples": 2, "max_new_tokens": 8, "temperature": 0.8, "seed": 11}
LAYER = 1


def planted(model, word: str, scale: float = 30.0) -> SteeringVector:
    """A vector at the last layer's input that is the unembedding of ``word``'s token: it promotes that token."""
    (token,) = model.tokenizer(f" {word}", add_special_tokens=False).input_ids
    direction = model.bridge.unembed.W_U[:, token].detach().float()
    return SteeringVector(
        layers=(LAYER,), directions=(scale * direction / direction.norm())[None], model_name=model.info.name,
        d_model=model.info.d_model, method="test", source=f"unembedding of {word!r}",
    )  # fmt: skip


def rate_of(word: str) -> Scorer:
    return Scorer(f"rate of {word!r}", "share of words", lambda texts: topic_rate(texts, frozenset({word})))


@pytest.fixture(scope="module")
def planted_pair(tiny_llama):
    vectors = [planted(tiny_llama, "dogs"), planted(tiny_llama, "cold")]
    result = compose(
        tiny_llama, vectors, [[LAYER], [LAYER]], [1.0, 1.0], [rate_of("dogs"), rate_of("cold")], prompts=PROMPTS, **OPTIONS
    )
    return vectors, result


def texts_of(model, vectors=None, coefficients=None):
    """The reference: the same prompts and seeds sampled inside steer() with the vectors (None: unsteered)."""
    if vectors is None:
        grouped = generate_batch(model, list(PROMPTS), **OPTIONS)
    else:
        with steer(model, vectors, coefficients, layers=[LAYER]):
            grouped = generate_batch(model, list(PROMPTS), **OPTIONS)
    return tuple(g.text for group in grouped for g in group)


def test_each_condition_is_the_same_run_made_with_steer(tiny_llama, planted_pair):
    vectors, result = planted_pair
    assert isinstance(result, Composition)
    assert result.condition_names == ("unsteered", "alone: rate of 'dogs'", "alone: rate of 'cold'", "together")
    texts = {c.condition: c.texts for c in result.conditions}
    assert texts["unsteered"] == texts_of(tiny_llama)
    assert texts["alone: rate of 'dogs'"] == texts_of(tiny_llama, vectors[0], 1.0)
    assert texts["alone: rate of 'cold'"] == texts_of(tiny_llama, vectors[1], 1.0)
    assert texts["together"] == texts_of(tiny_llama, vectors, [1.0, 1.0])  # both vectors' hooks, one after the other
    assert len(set(texts.values())) == 4  # every condition changed the text


def test_the_table_is_each_scorer_on_each_conditions_texts(planted_pair):
    _, result = planted_pair
    dogs, cold = rate_of("dogs"), rate_of("cold")
    expected = np.array([[scorer.score(c.texts).mean() for c in result.conditions] for scorer in (dogs, cold)])
    np.testing.assert_array_equal(result.table(), expected)
    base = expected[:, 0]
    np.testing.assert_array_equal(result.alone, [expected[0, 1], expected[1, 2]])
    np.testing.assert_array_equal(result.interaction, expected[:, 3] - [expected[0, 1], expected[1, 2]])
    np.testing.assert_allclose(result.additive_prediction, base + (expected[:, 1] - base) + (expected[:, 2] - base))
    # planted by construction: each vector raises its own word's rate far above the unsteered text's, and so does the sum
    assert result.alone[0] > base[0] + 0.2 and result.alone[1] > base[1] + 0.2
    assert (result.together > base + 0.1).all()
    frame = result.to_frame()
    assert list(frame["behaviour"]) == list(result.behaviours) and list(frame.columns[2:6]) == list(result.condition_names)
    assert frame["interaction"].tolist() == pytest.approx(result.interaction.tolist())
    for condition in result.conditions:
        np.testing.assert_array_equal(condition.distinct2, distinct_n(condition.texts, 2))


def test_damage_is_zero_unsteered_and_positive_steered(planted_pair):
    _, result = planted_pair
    assert result.kl[0] == 0.0 and result.perplexity_ratio[0] == 1.0
    assert (result.kl[1:] > 0.01).all() and np.isfinite(result.perplexity_ratio).all()
    damage = result.damage_frame()
    assert damage["condition"].tolist() == list(result.condition_names) and damage["kl"].tolist() == result.kl.tolist()


def test_a_vector_and_its_negation_cancel_exactly(tiny_llama):
    vector = make(tiny_llama, layers=(LAYER,), scale=3.0)
    result = compose(tiny_llama, [vector, -vector], [[LAYER], [LAYER]], [1.5, 1.5], [SCORERS["sentiment"]] * 2,
                     prompts=PROMPTS, **OPTIONS)  # fmt: skip
    by_name = {c.condition: c for c in result.conditions}
    assert result.behaviours == ("sentiment (VADER compound) (1)", "sentiment (VADER compound) (2)")
    assert by_name["together"].texts == by_name["unsteered"].texts
    assert by_name["alone: sentiment (VADER compound) (1)"].texts != by_name["unsteered"].texts
    assert result.kl[-1] == 0.0  # the summed addition is exactly zero: the model's distributions are untouched
    np.testing.assert_array_equal(by_name["together"].perplexity, by_name["unsteered"].perplexity)


def test_the_spec_runs_compose_and_round_trips(tiny_llama):
    a, b = make(tiny_llama, layers=(0, 1), seed=1), make(tiny_llama, layers=(1,), seed=2)
    spec = SteeringComposition(
        (CompositionItem(a, (0,), 2.0, "sentiment", label="positive"), CompositionItem(b, [1], 3, "weddings")),
        prompts=PROMPTS[:2], n_samples=1, max_new_tokens=4,
    )  # fmt: skip
    assert spec.items[1].layers == (1,) and spec.items[1].coefficient == 3.0
    assert loads(*dumps(spec)).digest() == spec.digest()
    result = spec.run(tiny_llama)
    assert result.behaviours == ("positive", "wedding-word rate") and result.scorers == (
        "sentiment (VADER compound)",
        "wedding-word rate",
    )
    direct = compose(tiny_llama, [a, b], [[0], [1]], [2.0, 3.0], [SCORERS["sentiment"], SCORERS["weddings"]],
                     labels=["positive", ""], prompts=PROMPTS[:2], n_samples=1, max_new_tokens=4)  # fmt: skip
    assert [c.texts for c in result.conditions] == [c.texts for c in direct.conditions]
    np.testing.assert_array_equal(result.table(), direct.table())
    kept = loads(*dumps(result))
    np.testing.assert_array_equal(kept.table(), result.table())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda v: CompositionItem(v, (), 1.0), "at least one layer"),
        (lambda v: CompositionItem(v, (0,), 1.0), r"no direction at layer\(s\) \[0\]"),
        (lambda v: CompositionItem(v, (1,), float("nan")), "coefficient"),
        (lambda v: CompositionItem(v, (1,), 1.0, "nonsense"), "scorer"),
        (lambda v: SteeringComposition(()), "at least one vector"),
        (lambda v: SteeringComposition((CompositionItem(v, (1,), 1.0, "reward"),)), "reward model"),
    ],
)
def test_bad_settings_are_input_errors(tiny_llama, build, message):
    with pytest.raises(InputError, match=message):
        build(make(tiny_llama, layers=(1,)))


def test_compose_refuses_mismatched_lists(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    with pytest.raises(InputError, match="one coefficient"):
        compose(tiny_llama, [vector, vector], [[1], [1]], [1.0], [SCORERS["sentiment"]] * 2)
    with pytest.raises(InputError, match="at least one vector"):
        compose(tiny_llama, [], [], [], [])
    with pytest.raises(InputError, match="no direction"):
        compose(tiny_llama, [vector], [[0]], [1.0], [SCORERS["sentiment"]])
    assert torch.equal(vector.directions, make(tiny_llama, layers=(1,)).directions)  # nothing mutated the vector
