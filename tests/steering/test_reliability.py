"""Reliability per prompt: effects with a t-interval and the anti-steerable fraction (hand-computed), and pair
consistency against activations recorded one text at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.activations import record
from interp.errors import InputError
from interp.tokens import as_batch, tokenize
from steering.datasets import ContrastPairs
from steering.make import mean_difference
from steering.reliability import pair_consistency, per_prompt_effects
from steering.sweep import Evaluation, TextScores
from steering.vector import SteeringVector

PROMPTS = ("The weather is", "My neighbour said", "The report says")
# two samples per prompt, grouped by prompt: prompt means unsteered 0.2, 0.1, 0.5; steered 0.5, -0.1, 0.9
UNSTEERED = [0.1, 0.3, 0.0, 0.2, 0.5, 0.5]
STEERED = [0.6, 0.4, -0.2, 0.0, 1.0, 0.8]


def scores(behaviour) -> TextScores:
    n = len(behaviour)
    return TextScores(tuple(f"text {i}" for i in range(n)), np.array(behaviour, dtype=float), np.full(n, 10.0), np.ones(n))


def evaluation(unsteered=UNSTEERED, steered=STEERED, prompts=PROMPTS) -> Evaluation:
    return Evaluation(1, 4.0, tuple(prompts), scores(unsteered), scores(steered), "toy", 0.0)


def test_effects_and_their_t_interval_are_the_hand_computation():
    result = per_prompt_effects(evaluation())
    effects = [0.5 - 0.2, -0.1 - 0.1, 0.9 - 0.5]
    assert [e.effect for e in result.effects] == pytest.approx(effects)
    assert [e.prompt for e in result.effects] == list(PROMPTS)
    assert [e.unsteered for e in result.effects] == pytest.approx([0.2, 0.1, 0.5])
    assert [e.steered for e in result.effects] == pytest.approx([0.5, -0.1, 0.9])
    # mean ± t(0.975, n - 1) · sd / √n with sd over the n = 3 prompts (n - 1 in the denominator); t(0.975, 2) from tables
    mean = sum(effects) / 3
    sd = math.sqrt(sum((e - mean) ** 2 for e in effects) / 2)
    half_width = 4.302652729911275 * sd / math.sqrt(3)
    assert result.mean_effect == pytest.approx(mean) == pytest.approx(evaluation().behaviour_gain)
    assert (result.low, result.high) == (pytest.approx(mean - half_width), pytest.approx(mean + half_width))
    assert (result.n_prompts, result.samples_per_prompt, result.confidence) == (3, 2, 0.95)


def test_the_gain_interval_points_toward_the_goal_like_the_gain():
    raising = per_prompt_effects(evaluation(), goal="raise")
    lowering = per_prompt_effects(evaluation(), goal="lower")
    assert raising.gain_interval == (raising.low, raising.high)
    # lowering gains are minus the effect, so the interval flips: its low end is minus the effect's high end
    assert lowering.gain_interval == (pytest.approx(-lowering.high), pytest.approx(-lowering.low))
    low, high = lowering.gain_interval
    assert low < -lowering.mean_effect < high


def test_a_wider_confidence_gives_a_wider_interval():
    ninety = per_prompt_effects(evaluation(), confidence=0.90)
    ninety_five = per_prompt_effects(evaluation())
    assert ninety.low > ninety_five.low and ninety.high < ninety_five.high
    # t(0.95, 2) = 2.919986 from tables
    effects = np.array([0.3, -0.2, 0.4])
    assert ninety.high - ninety.mean_effect == pytest.approx(2.919985580355516 * effects.std(ddof=1) / math.sqrt(3))


def test_anti_steerable_is_the_fraction_moved_against_the_goal():
    raising = per_prompt_effects(evaluation(), goal="raise")
    lowering = per_prompt_effects(evaluation(), goal="lower")
    assert raising.anti_steerable_fraction == pytest.approx(1 / 3)  # the second prompt went down
    assert lowering.anti_steerable_fraction == pytest.approx(2 / 3)  # the first and third went up
    assert [e.wrong_way for e in raising.effects] == [False, True, False]
    assert [e.wrong_way for e in lowering.effects] == [True, False, True]
    assert [e.prompt for e in raising.worst_first] == [PROMPTS[1], PROMPTS[0], PROMPTS[2]]  # ascending effect
    assert [e.prompt for e in lowering.worst_first] == [PROMPTS[2], PROMPTS[0], PROMPTS[1]]  # descending effect


def test_an_unmoved_prompt_is_not_the_wrong_way_for_either_goal():
    unmoved = evaluation(unsteered=[0.1, 0.3, 0.0, 0.2], steered=[0.3, 0.1, 0.5, 0.3], prompts=PROMPTS[:2])
    for goal in ("raise", "lower"):
        result = per_prompt_effects(unmoved, goal=goal)
        assert result.effects[0].effect == pytest.approx(0.0) and not result.effects[0].wrong_way
    assert per_prompt_effects(unmoved, goal="raise").anti_steerable_fraction == 0.0
    assert per_prompt_effects(unmoved, goal="lower").anti_steerable_fraction == 0.5


@pytest.mark.parametrize(
    ("kwargs", "options", "message"),
    [
        ({"prompts": PROMPTS[:1], "unsteered": [0.0, 1.0], "steered": [1.0, 2.0]}, {}, "at least 2 prompts"),
        ({"unsteered": UNSTEERED[:5], "steered": STEERED[:5]}, {}, "same number of samples"),
        ({"steered": STEERED[:4]}, {}, "same samples"),
        ({"steered": [*STEERED[:5], math.nan]}, {}, "sample 6 is not a finite number"),
        ({}, {"goal": "both"}, "Unknown goal"),
        ({}, {"confidence": 95}, "confidence level"),
    ],
)
def test_bad_evaluations_and_settings_are_explained(kwargs, options, message):
    with pytest.raises(InputError, match=message):
        per_prompt_effects(evaluation(**kwargs), **options)


# -- pair consistency (tiny Llama) -------------------------------------------------------------

PAIRS = ContrastPairs("toy", ("I love dogs", "When Mary went", "the store"), ("I hate dogs", "When John went", "the drink"))


def one_text_activation(model, text: str, layer: int, position: str) -> torch.Tensor:
    """The text run alone (no batch, no padding): its resid_pre at the last token or averaged over its tokens."""
    name = f"blocks.{layer}.hook_resid_pre"
    acts = record(model, as_batch(tokenize(model, text), model), [name]).activations[name][0].float().cpu()  # [pos, d]
    return acts[-1] if position == "last" else acts.mean(dim=0)


@pytest.mark.parametrize("position", ["last", "mean"])
def test_cosines_match_differences_recorded_one_text_at_a_time(tiny_llama, position):
    vector = mean_difference(tiny_llama, PAIRS, layers=[0, 1], position=position)
    result = pair_consistency(tiny_llama, PAIRS, vector, 1, position=position)
    differences = [
        one_text_activation(tiny_llama, pos, 1, position) - one_text_activation(tiny_llama, neg, 1, position)
        for pos, neg in zip(PAIRS.positive, PAIRS.negative, strict=True)
    ]
    mean = sum(differences) / len(differences)  # the mean-difference direction, by hand
    by_hand = [float(d @ mean / (d.norm() * mean.norm())) for d in differences]
    assert result.cosines == pytest.approx(by_hand, abs=1e-4)
    assert result.mean == pytest.approx(np.mean(by_hand), abs=1e-4)
    assert result.spread == pytest.approx(np.std(by_hand), abs=1e-4)
    assert result.minimum == pytest.approx(min(by_hand), abs=1e-4)
    assert (result.layer, result.position) == (1, position)


def test_a_vector_made_from_one_pair_has_cosine_one_and_opposite_pairs_minus_one(tiny_llama):
    one = ContrastPairs("one", ("I love dogs",), ("I hate dogs",))
    # mean_difference needs 2 pairs: the same pair twice makes the vector exactly that pair's difference
    vector = mean_difference(tiny_llama, ContrastPairs("twice", one.positive * 2, one.negative * 2), layers=[1])
    alone = pair_consistency(tiny_llama, one, vector, 1)
    assert alone.cosines == pytest.approx((1.0,), abs=1e-5) and alone.spread == pytest.approx(0.0, abs=1e-5)
    # the pair reversed has the opposite difference: cosines 1, -1, 1; mean 1/3; spread sqrt(8/9) (population sd)
    mixed = ContrastPairs("mixed", ("I love dogs", "I hate dogs", "I love dogs"), ("I hate dogs", "I love dogs", "I hate dogs"))
    result = pair_consistency(tiny_llama, mixed, vector, 1)
    assert result.cosines == pytest.approx((1.0, -1.0, 1.0), abs=1e-5)
    assert result.mean == pytest.approx(1 / 3, abs=1e-5) and result.minimum == pytest.approx(-1.0, abs=1e-5)
    assert result.spread == pytest.approx(math.sqrt(8 / 9), abs=1e-5)


def test_a_constructed_direction_gives_the_hand_computed_cosines(tiny_llama):
    first, second = (
        one_text_activation(tiny_llama, positive, 1, "last") - one_text_activation(tiny_llama, negative, 1, "last")
        for positive, negative in (("I love dogs", "I hate dogs"), ("When Mary went", "When John went"))
    )
    # the direction of first/|first| + second/|second| bisects the two differences: equal cosines, cos(angle / 2)
    bisector = first / first.norm() + second / second.norm()
    vector = SteeringVector(layers=(1,), directions=bisector[None, :], model_name=tiny_llama.info.name)
    pairs = ContrastPairs("two", ("I love dogs", "When Mary went"), ("I hate dogs", "When John went"))
    cos_half_angle = math.cos(math.acos(float(first @ second / (first.norm() * second.norm()))) / 2)
    assert pair_consistency(tiny_llama, pairs, vector, 1).cosines == pytest.approx((cos_half_angle, cos_half_angle), abs=1e-4)


def test_bad_pair_consistency_inputs_are_explained(tiny_llama):
    d_model = tiny_llama.info.d_model
    vector = SteeringVector(layers=(1,), directions=torch.ones(1, d_model))
    with pytest.raises(InputError, match="no direction at layer 0"):
        pair_consistency(tiny_llama, PAIRS, vector, 0)
    with pytest.raises(InputError, match="at least one contrast pair"):
        pair_consistency(tiny_llama, ContrastPairs("none", (), ()), vector, 1)
    with pytest.raises(InputError, match="is zero"):
        pair_consistency(tiny_llama, PAIRS, vector * 0.0, 1)
    with pytest.raises(InputError, match="Pair\\(s\\) \\[2\\] give the same activation"):
        pair_consistency(tiny_llama, ContrastPairs("same", ("I love", "the store"), ("I hate", "the store")), vector, 1)
    with pytest.raises(InputError, match="Unknown position"):
        pair_consistency(tiny_llama, PAIRS, vector, 1, position="first")
    with pytest.raises(InputError, match="wide"):
        pair_consistency(tiny_llama, PAIRS, SteeringVector(layers=(1,), directions=torch.ones(1, d_model + 1)), 1)
