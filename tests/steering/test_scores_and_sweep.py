"""Scorers, the damage measures, and the sweep's Pareto front and recommendation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.loading import load_hf_model
from interp.tokens import tokenize
from steering.datasets import BUILT_IN, built_in, read_pairs
from steering.scores import SENTIMENT, distinct_n, perplexity, sentiment, topic_rate
from steering.sweep import SweepCell, SweepResult, TextScores, sweep
from tests.steering.test_vector import make


def test_vader_and_topic_scores_read_the_text_not_the_model():
    scores = sentiment(["What a wonderful, lovely day!", "This is awful and I hate it.", "The train leaves at nine."])
    assert scores[0] > 0.5 and scores[1] < -0.5 and abs(scores[2]) < 0.2
    assert topic_rate(["The bride and groom were married in June", "The meeting was long"]).tolist() == [
        pytest.approx(3 / 8),
        0.0,
    ]


def test_distinct_n_measures_repetition():
    assert distinct_n(["a b c d e"], 2)[0] == 1.0
    assert distinct_n(["go go go go go"], 2)[0] == pytest.approx(1 / 4)
    assert distinct_n(["one"], 2)[0] == 0.0


def test_perplexity_matches_the_hugging_face_model(tiny_llama):
    prompt, continuation = (
        "When Mary and John went to the",
        tiny_llama.tokenizer(" store, John", add_special_tokens=False).input_ids,
    )
    ours = perplexity(tiny_llama, [prompt, prompt], [continuation, []])
    reference, _ = load_hf_model(tiny_llama.folder)
    ids = tokenize(tiny_llama, prompt) + continuation
    with torch.no_grad():
        log_probs = torch.log_softmax(reference(torch.tensor([ids])).logits[0], -1)
    n = len(tokenize(tiny_llama, prompt))
    expected = math.exp(-np.mean([log_probs[n - 1 + j, t].item() for j, t in enumerate(continuation)]))
    assert ours[0] == pytest.approx(expected, rel=1e-4)
    assert math.isnan(ours[1])


def test_built_in_datasets_have_thirty_pairs_or_more():
    for name in BUILT_IN:
        pairs = built_in(name)
        assert len(pairs) >= 30 and all(pairs.positive) and all(pairs.negative)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"pos,neg\na,b\n", "must name 'positive' and 'negative'"),
        (b"positive,negative\na,b\n", "1 pair"),
        (b"positive,negative\na,\nb,c\n", "line 2: a pair needs both"),
        ("positive,negative\ncaf\u00e9,x\n".encode("latin-1"), "line 2: not UTF-8"),
    ],
)
def test_uploaded_pairs_are_validated(data, message):
    from interp import InputError

    with pytest.raises(InputError, match=message):
        read_pairs("pairs.csv", data)


def _result(cells, goal="raise") -> SweepResult:
    baseline = TextScores(("x",), np.array([0.1]), np.array([10.0]), np.array([1.0]))
    return SweepResult((4, 6), tuple(sorted({c.coefficient for c in cells})), tuple(cells), baseline, "test", goal, 2.0, 1.0)


def cell(layer, coefficient, behaviour, ratio, distinct=1.0):
    return SweepCell(layer, coefficient, behaviour, 10 * ratio, ratio, distinct, ())


def test_recommendation_respects_the_damage_limit_and_repetition():
    cells = [cell(4, 1, 0.4, 1.2), cell(4, 2, 0.9, 3.0), cell(6, 1, 0.5, 1.9), cell(6, 2, 0.95, 1.5, distinct=0.3)]
    result = _result(cells)
    best = result.recommended()
    assert (best.layer, best.coefficient) == (6, 1)  # the strongest setting that is fluent and not repetitive
    front = {(c.layer, c.coefficient) for c in result.pareto_front()}
    assert front == {(4, 1), (6, 2)}  # (6, 1) and (4, 2) are beaten on both counts by (6, 2)


def test_two_sided_recommendation_needs_both_directions_to_work():
    cells = [cell(4, 2, 0.7, 1.2), cell(4, -2, 0.05, 1.3), cell(6, 2, 0.5, 1.4), cell(6, -2, -0.3, 1.6)]
    best = _result(cells, goal="both").recommended()
    assert (best.layer, best.coefficient) == (6, 2)  # layer 4 barely moves the other way


def test_sweep_runs_every_cell_with_the_same_seeds(tiny_llama):
    vector = make(tiny_llama, layers=(0, 1), scale=3.0)
    seen = []
    result = sweep(
        tiny_llama,
        vector,
        SENTIMENT,
        layers=[0, 1],
        coefficients=[0.0, 1.0],
        prompts=["I love", "The store"],
        n_samples=1,
        max_new_tokens=6,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (4, 4) and len(result.cells) == 4
    zero = [c for c in result.cells if c.coefficient == 0.0]
    assert all(c.texts == result.baseline.texts for c in zero)  # coefficient 0 reproduces the baseline samples
    assert result.grid("perplexity_ratio").shape == (2, 2)
    assert set(result.to_frame().columns) >= {"layer", "coefficient", "behaviour_gain", "perplexity_ratio", "distinct2"}
