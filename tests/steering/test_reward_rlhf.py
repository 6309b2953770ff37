"""Reward model, best-of-N and DPO: accuracy on held-out prompts, monotone best-of-N, DPO learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp import InputError
from interp.records import RunStore, new_record, replay
from steering.rlhf import (
    BestOfNRun,
    ComparisonRun,
    DPORun,
    RewardModel,
    RewardTrainingRun,
    best_of_n,
    builtin_preferences,
    compare,
    inside_view,
    load_tuned,
    read_preferences,
    recommend_steering,
    reward_attribution,
    split_by_prompt,
    train_dpo,
    train_reward_model,
)


@pytest.fixture()
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    return RunStore()


@pytest.fixture(scope="module")
def tiny_reward(tiny_llama):
    train, test = split_by_prompt(builtin_preferences())
    return train_reward_model(tiny_llama, train[:40], test[:10], layers=[0, 1], steps=100).reward_model


def test_split_keeps_each_prompt_on_one_side():
    pairs = builtin_preferences()
    assert len(pairs) >= 150 and {p.trait for p in pairs} == {"helpful", "polite"}
    train, test = split_by_prompt(pairs)
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert {p.trait for p in test} == {"helpful", "polite"} and 0.2 < len(test) / len(pairs) < 0.3


def test_reward_model_saves_loads_and_refuses_other_weights(tiny_llama, tiny_gpt2, tiny_reward, tmp_path):
    folder = tiny_reward.save(tmp_path / "rm")
    loaded = RewardModel.load(folder, tiny_llama)
    texts = ["Of course, I would be glad to help.", "Do it yourself."]
    assert np.allclose(
        loaded.score(tiny_llama, ["Can you help?"] * 2, texts), tiny_reward.score(tiny_llama, ["Can you help?"] * 2, texts)
    )
    with pytest.raises(InputError, match="trained on"):
        RewardModel.load(folder, tiny_gpt2)
    # The page's download and upload: one zip with both files.
    zipped = RewardModel.from_zip_bytes(tiny_reward.to_zip_bytes(), tiny_llama)
    assert np.array_equal(
        zipped.score(tiny_llama, ["Can you help?"] * 2, texts), tiny_reward.score(tiny_llama, ["Can you help?"] * 2, texts)
    )
    with pytest.raises(InputError, match="trained on"):
        RewardModel.from_zip_bytes(tiny_reward.to_zip_bytes(), tiny_gpt2)


def test_a_bad_reward_zip_gets_a_clear_message(tiny_llama):
    import io
    import zipfile

    with pytest.raises(InputError, match="not a zip"):
        RewardModel.from_zip_bytes(b"not a zip at all", tiny_llama)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../reward_card.json", "{}")  # a path that climbs out is never used as a path
    with pytest.raises(InputError, match="no reward_head.safetensors"):
        RewardModel.from_zip_bytes(buffer.getvalue(), tiny_llama)


def test_reward_attribution_explains_the_reward_it_computes(tiny_llama, tiny_reward):
    prompt, response = "Can you help me with my homework?", "Of course, I would be glad to help."
    result = reward_attribution(tiny_llama, tiny_reward, prompt, response, "feature_ablation")
    assert result.target_value == pytest.approx(float(tiny_reward.score(tiny_llama, [prompt], [response])[0]), abs=1e-4)
    assert len(result.scores) == len(result.tokens) and np.isfinite(result.scores).all()
    with pytest.raises(InputError, match="Captum method"):
        reward_attribution(tiny_llama, tiny_reward, prompt, response, "shap")


def test_best_of_n_reward_never_falls_as_n_grows(tiny_llama, tiny_reward):
    result = best_of_n(
        tiny_llama, tiny_reward, ["Can you help me?", "Where is the station?"], ns=(1, 2, 4), groups=2, max_new_tokens=6
    )
    assert result.per_group.shape == (2, 3)
    assert np.all(np.diff(result.per_group, axis=1) >= 0) and np.all(np.diff(result.mean_reward) >= 0)
    assert result.kl_bounds.tolist() == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    assert len(result.samples[0]) == 4


def test_dpo_lowers_the_loss_and_widens_the_margin(tiny_llama, tmp_path):
    pairs = builtin_preferences()[:16]
    result = train_dpo(tiny_llama, pairs, tmp_path / "dpo", max_steps=8, batch_size=4, learning_rate=5e-3)
    assert result.steps_done == 8 and (result.adapter / "adapter_model.safetensors").exists()
    first, last = result.log[:2], result.log[-3:]
    assert np.mean([e.loss for e in last]) < np.mean([e.loss for e in first]) - 0.1
    assert np.mean([e.reward_margin for e in last]) > np.mean([e.reward_margin for e in first]) + 0.3
    tuned = load_tuned(result)
    assert tuned.info.weights_sha256 != tiny_llama.info.weights_sha256  # the shared model was not touched
    view = inside_view(tiny_llama, tuned, [p.prompt for p in pairs[:4]], [p.chosen for p in pairs[:4]], {1: torch.ones(64)})
    assert view.relative_change.shape == (2,) and view.relative_change.max() > 0 and np.isfinite(view.cosine_with_steering[1])


def test_dpo_can_be_stopped_and_keeps_its_adapter(tiny_llama, tmp_path):
    steps = []
    result = train_dpo(
        tiny_llama,
        builtin_preferences()[:16],
        tmp_path / "dpo",
        max_steps=50,
        batch_size=4,
        on_log=steps.append,
        should_stop=lambda: len(steps) >= 2,
    )
    assert result.stopped and result.steps_done < 50 and (result.adapter / "adapter_model.safetensors").exists()
    # Replaying the stopped run (as the Experiments page does) retraces the same steps under the same schedule.
    replayed = train_dpo(
        tiny_llama, builtin_preferences()[:16], tmp_path / "again", max_steps=50, batch_size=4, stop_after_steps=result.steps_done
    )
    assert replayed.steps_done == result.steps_done
    assert [e.loss for e in replayed.log] == pytest.approx([e.loss for e in result.log], abs=1e-5)


def test_comparison_has_every_method_on_the_same_scale(tiny_llama, tiny_reward):
    rows = compare(
        tiny_llama, tiny_reward, ["Can you help me?", "Where is the station?"], best_of=2, n_samples=1, max_new_tokens=6
    )
    assert [r.method for r in rows] == ["unsteered", "best-of-2"] and rows[0].reward_gain == 0.0
    assert all(np.isfinite(r.perplexity_under_base) for r in rows)


def test_steering_recommendation_is_swept_on_the_comparisons_own_replies(tiny_llama, tiny_reward):
    from tests.steering.test_vector import make

    vector = make(tiny_llama, layers=(0, 1))
    prompts = ["Can you help me?", "Where is the station?"]
    choice = recommend_steering(
        tiny_llama, tiny_reward, vector, prompts, layers=[0, 1], coefficients=[0.0, 4.0], max_new_tokens=6
    )
    assert len(choice.cells) == 4
    for _layer, coefficient, gain, ratio in choice.cells:
        if coefficient == 0.0:  # adding nothing must reproduce the unsteered replies exactly
            assert gain == 0.0 and ratio == pytest.approx(1.0)
    allowed = [c for c in choice.cells if c[3] <= 2.0]
    assert choice.within_limit and (choice.layer, choice.coefficient, choice.reward_gain) == max(allowed, key=lambda c: c[2])[:3]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("p.csv", b"prompt,chosen\nhi,there\n", "missing 'rejected'"),
        ("p.jsonl", b'{"prompt": "a", "chosen": "b", "rejected": "b"}\n' * 12, "are the same text"),
        ("p.jsonl", b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n' * 3, "needs at least 10"),
        ("p.txt", b"x", "as .csv or .jsonl"),
    ],
)
def test_uploaded_preferences_are_validated(name, data, message):
    with pytest.raises(InputError, match=message):
        read_preferences(name, data)


def test_reward_runs_keep_and_replay_with_their_own_pairs(tiny_llama, store):
    spec = RewardTrainingRun(tuple(builtin_preferences()), data_name="built-in", layers=(1,), steps=20)
    reward = spec.run(tiny_llama)
    assert replay(tiny_llama, store.load(store.save(new_record(tiny_llama, spec, reward)))).matches
    # A reward model trained on uploaded pairs keeps them in its spec, so it replays without the file.
    uploaded = RewardTrainingRun(tuple(builtin_preferences()[:40]), data_name="upload", layers=(1,), steps=20)
    mine = uploaded.run(tiny_llama)
    assert mine.reward_model.card["data"] == "upload" and mine.reward_model.card["pairs_train"] < 40
    kept = store.load(store.save(new_record(tiny_llama, uploaded, mine)))
    assert kept.spec.pairs == uploaded.pairs and replay(tiny_llama, kept).matches


def test_run_specs_take_the_functions_defaults_and_refuse_bad_settings(tiny_reward):
    pairs = tuple(builtin_preferences()[:12])
    assert RewardTrainingRun.default("steps") == 300 and DPORun.default("max_steps") == 30
    assert DPORun.default("learning_rate") == 5e-4 and DPORun.default("stop_after_steps") is None
    with pytest.raises(InputError, match="at least 2 preference pairs"):
        DPORun(pairs[:1])
    with pytest.raises(InputError, match="number of preference pairs"):
        RewardTrainingRun(pairs[:3])
    with pytest.raises(InputError, match="N must be"):
        BestOfNRun(tiny_reward, ("Hi",), ns=(0, 2))
    with pytest.raises(InputError, match="learning rate"):
        DPORun(pairs, learning_rate=float("nan"))


def test_dpo_runs_replay_and_join_the_comparison(tiny_llama, tiny_reward, store):
    train, _ = split_by_prompt(builtin_preferences())
    spec = DPORun(tuple(train), max_steps=2, batch_size=2, learning_rate=5e-3, beta=0.1, lora_rank=4)
    result = spec.run(tiny_llama)
    assert result.steps_done == 2 and len(result.log) == 2
    outcome = replay(tiny_llama, store.load(store.save(new_record(tiny_llama, spec, result))))
    assert outcome.matches, outcome.max_abs_difference
    # The comparison takes the adapter that run made (no training again) and looks inside it.
    comparison = ComparisonRun(
        tiny_reward, tuple(builtin_preferences()), ("Can you help me?",), steering_layers=(1,), coefficients=(1.0,),
        best_of=2, n_samples=1, max_new_tokens=4, dpo=spec,
    ).run(tiny_llama)  # fmt: skip
    assert [r.method for r in comparison.rows][-1] == "DPO adapter" and comparison.rows[0].reward_gain == 0.0
    assert comparison.inside is not None and comparison.inside.relative_change.shape == (2,)


def test_a_stopped_dpo_run_is_kept_as_far_as_it_went(tiny_llama, tmp_path):
    steps = []
    spec = DPORun(tuple(builtin_preferences()[:16]), max_steps=50, batch_size=4)
    result = spec.train(tiny_llama, tmp_path / "dpo", on_log=steps.append, should_stop=lambda: len(steps) >= 2)
    kept = spec.ended_at(result)
    assert result.stopped and kept.stop_after_steps == result.steps_done and kept.max_steps == 50


def test_default_reward_model_is_accurate_on_held_out_prompts(default_model):
    train, test = split_by_prompt(builtin_preferences())
    result = train_reward_model(default_model, train, test)
    assert result.test_accuracy >= 0.85, result.validation_by_layer
    assert result.reward_model.card["test_accuracy"] == pytest.approx(result.test_accuracy, abs=1e-4)
