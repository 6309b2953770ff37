"""Steering runs as specs: settings checked up front, kept with their vector and reward model, replayed exactly."""

from __future__ import annotations

import pytest

from interp import InputError
from interp.records import RunStore, new_record, replay
from steering.runs import SCORER_NAMES, SteeringBatchEvaluation, SteeringEvaluation, SteeringSweep
from steering.scores import SCORERS
from tests.steering.test_vector import make


@pytest.fixture()
def run_store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    return RunStore()


@pytest.fixture(scope="module")
def reward(tiny_llama):
    from steering.rlhf import builtin_preferences, split_by_prompt, train_reward_model

    train, test = split_by_prompt(builtin_preferences())
    return train_reward_model(tiny_llama, train, test, layers=[1], steps=20, seed=0).reward_model


def test_the_scorer_choices_are_the_built_in_scorers_and_the_reward_model():
    assert (*SCORERS, "reward") == SCORER_NAMES


def test_steering_evaluations_replay_from_the_store(tiny_llama, run_store):
    spec = SteeringEvaluation(make(tiny_llama, layers=(1,)), 1, 2, prompts=["I love", "The store"], n_samples=1,
                              max_new_tokens=4, seed=3)  # fmt: skip
    assert spec.prompts == ("I love", "The store") and spec.coefficient == 2.0  # stored in one canonical form
    result = spec.run(tiny_llama)
    assert result.layer == 1 and len(result.steered.texts) == 2
    record = run_store.load(run_store.save(new_record(tiny_llama, spec, result)))
    assert record.kind == "steering_evaluation" and record.settings["seed"] == 3
    assert replay(tiny_llama, record).matches


def test_runs_scored_by_a_reward_model_keep_it_and_replay(tiny_llama, run_store, reward):
    vector = make(tiny_llama, layers=(1,))
    spec = SteeringEvaluation(vector, 1, 2.0, scorer="reward", reward_model=reward, prompts=("I love",), n_samples=1,
                              max_new_tokens=4, seed=3)  # fmt: skip
    result = spec.run(tiny_llama)
    assert result.scorer == "reward model"
    saved = run_store.load(run_store.save(new_record(tiny_llama, spec, result)))
    assert saved.spec.reward_model is not None and replay(tiny_llama, saved).matches
    with pytest.raises(InputError, match="not kept with it"):
        SteeringEvaluation(vector, 1, 2.0, scorer="reward", prompts=("I love",))
    with pytest.raises(InputError, match="not kept with it"):
        SteeringSweep(vector, (1,), (1.0,), scorer="reward")


def test_sweeps_and_batch_evaluations_replay(tiny_llama, run_store, reward):
    vector = make(tiny_llama, layers=(1,))
    specs = [
        SteeringSweep(vector, layers=[1], coefficients=[1], prompts=("I love",), n_samples=1, max_new_tokens=4, goal="raise"),
        SteeringSweep(
            vector, (1,), (1.0,), scorer="reward", reward_model=reward, prompts=("I love",), n_samples=1, max_new_tokens=4
        ),
        SteeringBatchEvaluation(vector, 1, -2.0, prompts=("I love", "The store", "Today"), max_new_tokens=4),
    ]
    for spec in specs:
        result = spec.run(tiny_llama)
        outcome = replay(tiny_llama, run_store.load(run_store.save(new_record(tiny_llama, spec, result))))
        assert outcome.matches, (spec.kind, outcome.max_abs_difference)
    frame = result.to_frame()
    assert frame["prompt"].tolist() == ["I love", "The store", "Today"] and frame.shape[0] == 3


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"layer": 0}, r"no direction at layer\(s\) \[0\]"),
        ({"coefficient": float("nan")}, "coefficient must be a finite number"),
        ({"scorer": "vibes"}, "Unknown scorer 'vibes'"),
        ({"n_samples": 0}, "number of samples"),
        ({"max_new_tokens": 10_000}, "number of new tokens"),
        ({"prompts": ()}, "at least one prompt"),
    ],
)
def test_bad_evaluation_settings_are_refused_with_the_pages_messages(tiny_llama, settings, message):
    with pytest.raises(InputError, match=message):
        SteeringEvaluation(**{"vector": make(tiny_llama, layers=(1,)), "layer": 1, "coefficient": 1.0, **settings})


def test_bad_sweeps_are_refused_before_they_run(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    with pytest.raises(InputError, match=r"no direction at layer\(s\) \[0\]"):
        SteeringSweep(vector, (0, 1), (1.0,))
    with pytest.raises(InputError, match="at least one coefficient"):
        SteeringSweep(vector, (1,), ())
    with pytest.raises(InputError, match="Unknown goal"):
        SteeringSweep(vector, (1,), (1.0,), goal="sideways")
