"""A behaviour score of badly damaged text is not read as behaviour (issue 20: VADER scored steered gibberish +0.92)."""

from __future__ import annotations

import numpy as np

from steering.sweep import (
    MAX_PERPLEXITY_RATIO,
    UNRELIABLE_FACTOR,
    SweepCell,
    SweepResult,
    TextScores,
    behaviour_is_reliable,
)


def test_a_score_is_unreliable_only_far_past_the_damage_limit():
    edge = UNRELIABLE_FACTOR * MAX_PERPLEXITY_RATIO
    assert behaviour_is_reliable(1.0) and behaviour_is_reliable(MAX_PERPLEXITY_RATIO) and behaviour_is_reliable(edge)
    assert not behaviour_is_reliable(edge * 1.01)
    assert behaviour_is_reliable(float("nan"))  # unknown damage is not held against the score
    assert not behaviour_is_reliable(5.0, limit=2.0) and behaviour_is_reliable(5.0, limit=3.0)


def test_the_sweep_never_recommends_a_cell_whose_score_is_unreliable():
    baseline = TextScores(("a",), np.array([0.0]), np.array([10.0]), np.array([1.0]))
    cells = tuple(
        SweepCell(1, coefficient, behaviour, 10.0 * ratio, ratio, 1.0, ("x",))
        for coefficient, behaviour, ratio in ((1.0, 0.2, 1.5), (4.0, 0.92, 30.0))
    )
    swept = SweepResult((1,), (1.0, 4.0), cells, baseline, "sentiment (VADER compound)", "raise", 2.0, 0.0)
    assert [swept.behaviour_is_reliable(c) for c in cells] == [True, False]
    assert swept.recommended() is cells[0]  # the +0.92 of gibberish does not win
