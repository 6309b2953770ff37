"""Automatic steering search: it finds a planted optimum, judges it on prompts it never saw, and resumes from its journal."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy import stats

from interp import InputError, load_model
from interp.records import RunStore, new_record, replay
from interp.serialise import dumps, loads
from steering.angular import angular_hooks
from steering.kl import mean_kl
from steering.reliability import per_prompt_effects
from steering.scores import Scorer
from steering.search import SearchTrial, SteeringSearch, choose, pareto_numbers, search, split_prompts
from steering.sweep import evaluate
from steering.vector import SteeringVector
from tests.checkpoints import save_tiny_llama
from tests.steering.test_vector import make

PLANTED_LAYER = 2
UP, DOWN = " loyal", " cold"  # one token each in the tiny tokenizer; prompts below contain neither word
PROMPTS = ("The store", "When Mary", "The Eiffel", "Steering vectors", "John gave", "def add", "The Colosseum", "Mary went")
SMALL = {"n_samples": 1, "max_new_tokens": 4, "temperature": 0.8}


def word_balance(texts) -> np.ndarray:
    """Share of words that are "loyal" minus share that are "cold": raised by the planted direction, lowered against it."""
    scores = []
    for text in texts:
        words = re.findall(r"[a-z']+", text.lower())
        scores.append((words.count("loyal") - words.count("cold")) / len(words) if words else 0.0)
    return np.array(scores)


BALANCE = Scorer("loyal − cold word rate", "share of words", word_balance)


class CountingScorer:
    """A scorer that counts the texts it scores: how many evaluations a search made."""

    def __init__(self) -> None:
        self.calls = 0
        self.scorer = Scorer("counting", "share of words", self._score)

    def _score(self, texts):
        self.calls += 1
        return word_balance(texts)


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory):
    return load_model(save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-4"), n_layers=4), device="cpu")


def planted_vector(model) -> SteeringVector:
    """At layer 2: the unembedding difference "loyal" − "cold"; at the other layers, random directions with that readout
    projected out (damage without the behaviour). All unit norm."""
    ids = [model.tokenizer(word, add_special_tokens=False).input_ids for word in (UP, DOWN)]
    assert all(len(i) == 1 for i in ids)
    unembed = model.bridge.unembed.original_component.weight.detach().float()
    readout, _ = torch.linalg.qr(torch.stack([unembed[ids[0][0]], unembed[ids[1][0]]]).T)  # [d_model, 2]
    directions = torch.randn(4, model.info.d_model, generator=torch.Generator().manual_seed(0))
    directions = directions - (directions @ readout) @ readout.T
    directions[PLANTED_LAYER] = unembed[ids[0][0]] - unembed[ids[1][0]]
    directions = directions / directions.norm(dim=-1, keepdim=True)
    info = model.info
    return SteeringVector((0, 1, 2, 3), directions, model_name=info.name, d_model=info.d_model,
                          weights_sha256=info.weights_sha256)  # fmt: skip


def test_the_search_finds_the_planted_layer_and_coefficient_band_in_both_directions(tiny4):
    vector = planted_vector(tiny4)
    # the band by an independent reference: the sweep's own evaluations on a grid at the planted layer
    result = search(tiny4, vector, BALANCE, modes=("add",), coefficient_range=(2.0, 64.0), prompts=PROMPTS, n_trials=30,
                    n_samples=2, max_new_tokens=12, max_perplexity_ratio=3.0, seed=1)  # fmt: skip
    for direction, sign in (("raise", 1.0), ("lower", -1.0)):
        found = result.direction(direction)
        chosen = found.chosen
        assert chosen is not None, direction
        # A random setting is at layer 2 with 1/4 chance and in the band (×12…×40 of ×2…×64, log scale) with 1/3:
        # both directions by chance ≈ 0.7 %.
        assert chosen.layer == PLANTED_LAYER, (direction, chosen)
        assert 12.0 <= sign * chosen.coefficient <= 40.0, (direction, chosen)
        assert chosen.perplexity_ratio <= 3.0 and chosen.gain > 0.05
        reference = evaluate(tiny4, vector, PLANTED_LAYER, chosen.coefficient, BALANCE, prompts=result.search_prompts,
                             n_samples=2, max_new_tokens=12, seed=1)  # fmt: skip
        assert sign * reference.behaviour_gain == pytest.approx(chosen.gain, abs=1e-9)  # the trial is an evaluation
        assert reference.perplexity_ratio == pytest.approx(chosen.perplexity_ratio, rel=1e-6)
        # its standard error is the per-prompt interval's, by steering.reliability's t-interval over the same prompts
        effects = per_prompt_effects(reference, goal=direction)
        t = stats.t.ppf(0.975, effects.n_prompts - 1)
        assert chosen.gain_se == pytest.approx((effects.high - effects.mean_effect) / t, rel=1e-9)
        assert found.held_out is not None and found.held_out.gain > 0  # it carries over to prompts it never saw


def test_held_out_figures_come_from_the_held_out_prompts_only(tiny4):
    vector = planted_vector(tiny4)
    options = {"n_samples": 1, "max_new_tokens": 12, "temperature": 0.8}
    result = search(tiny4, vector, BALANCE, layers=[PLANTED_LAYER], modes=("add",), coefficient_range=(20.0, 30.0),
                    prompts=PROMPTS, n_trials=2, directions=("raise",), max_perplexity_ratio=1e6, seed=5, **options)  # fmt: skip
    assert set(result.search_prompts).isdisjoint(result.held_out_prompts)
    assert sorted(result.search_prompts + result.held_out_prompts) == sorted(PROMPTS)
    assert (result.search_prompts, result.held_out_prompts) == split_prompts(PROMPTS, 1 / 3, 5)  # deterministic by seed
    assert len(result.baseline.texts) == len(result.search_prompts)
    found = result.direction("raise")
    assert found.chosen is not None, found.trials  # the planted direction at ×20…30 raises the score
    held = found.held_out
    assert held.evaluation.prompts == result.held_out_prompts
    # the held-out check samples twice as many per prompt as a trial (held_out_samples=0): one evaluation, narrower
    reference = evaluate(tiny4, vector, found.chosen.layer, found.chosen.coefficient, BALANCE,
                         prompts=result.held_out_prompts, seed=5, **{**options, "n_samples": 2})  # fmt: skip
    assert held.evaluation.steered.texts == reference.steered.texts and len(reference.steered.texts) == 2 * 3
    assert held.gain == pytest.approx(reference.behaviour_gain, abs=1e-12)
    assert held.perplexity_ratio == pytest.approx(reference.perplexity_ratio, rel=1e-9)
    assert held.reliability.n_prompts == len(result.held_out_prompts)
    assert held.kl.mean >= 0 and math.isfinite(held.kl.mean)


def test_angular_trials_rotate_by_a_signed_angle_in_range(tiny_llama):
    vector = make(tiny_llama, layers=(1,), seed=2)
    prompts = PROMPTS[:4]
    result = search(tiny_llama, vector, BALANCE, modes=("angular",), angle_range=(10.0, 60.0), prompts=prompts, n_trials=2,
                    max_perplexity_ratio=1e6, seed=0, **SMALL)  # fmt: skip
    for direction, sign in (("raise", 1.0), ("lower", -1.0)):
        for trial in result.direction(direction).trials:
            assert trial.mode == "angular" and math.isnan(trial.coefficient) and 10.0 <= sign * trial.angle <= 60.0
    trial = result.direction("lower").trials[0]
    hooks = angular_hooks(tiny_llama, vector, trial.angle, layers=[1])  # the trial's KL is that of these hooks
    from interp.generation import generate_batch

    grouped = generate_batch(tiny_llama, list(result.search_prompts), seed=0, hooks=hooks, **SMALL)
    samples = [group[0] for group in grouped]
    expected = mean_kl(tiny_llama, [g.prompt_token_ids for g in samples], [g.token_ids for g in samples], hooks).mean
    assert trial.kl == pytest.approx(expected, rel=1e-9)


def test_a_search_resumes_from_its_journal_without_evaluating_finished_trials(tiny_llama, tmp_path):
    vector = make(tiny_llama, layers=(0, 1), seed=1)
    journal = str(tmp_path / "search.journal")
    options = {"modes": ("add",), "prompts": PROMPTS[:4], "directions": ("raise",), "max_perplexity_ratio": 1e6, **SMALL}

    def run(n_trials, storage_path=journal, progress=None, seed=0):
        counting = CountingScorer()
        result = search(tiny_llama, vector, counting.scorer, n_trials=n_trials, storage_path=storage_path, seed=seed,
                        progress=progress, **options)  # fmt: skip
        return result, counting.calls

    held_out = lambda result: 1 if result.direction("raise").chosen is not None else 0  # noqa: E731
    first, calls = run(3)
    assert calls == 1 + 3 + held_out(first)  # the baseline once, one per trial, the held-out check (its baseline is cached)
    again, calls = run(3)
    assert calls == 1 + held_out(again)  # every trial came from the journal
    assert again.direction("raise").trials == first.direction("raise").trials

    def stop_after_two(fraction, message):
        if message.startswith("Raise: trial 5 "):
            raise KeyboardInterrupt  # what a Stop button's callback does: raise from progress

    with pytest.raises(KeyboardInterrupt):
        run(6, progress=stop_after_two)
    resumed, calls = run(6)
    assert calls == 1 + 1 + held_out(resumed)  # trials 4 and 5 were kept when it stopped; only trial 6 runs now
    uninterrupted, _ = run(6, storage_path=None)
    assert resumed.direction("raise").trials == uninterrupted.direction("raise").trials  # resuming proposes the same

    import optuna

    study = optuna.load_study(study_name=resumed.direction("raise").study_name, storage=_journal(journal))
    assert {t.number for t in study.best_trials} == {t.number for t in resumed.direction("raise").front}
    changed, calls = run(2, seed=9)  # another seed is another study in the same journal, started afresh
    assert changed.direction("raise").study_name != resumed.direction("raise").study_name
    assert calls == 1 + 2 + held_out(changed)


def _journal(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def test_the_pareto_front_is_the_non_dominated_points():
    points = [(0, 0.1, 1.0), (1, 0.3, 1.5), (2, 0.2, 1.6), (3, 0.3, 1.4), (4, 0.0, 1.0)]
    assert pareto_numbers(points) == {0, 3}  # 4 ties 0 on damage with less gain; 1 and 2 are beaten by 3


def trial(number: int, gain: float, gain_se: float, ratio: float = 1.5, distinct2: float = 0.9) -> SearchTrial:
    return SearchTrial(number, 4, "add", 3.0, math.nan, 0.0, gain, gain_se, ratio, 0.1, distinct2, False, seconds=1.0)


def test_the_choice_prefers_a_reliable_gain_to_a_lucky_one_within_the_limits():
    lucky, steady = trial(0, 0.50, 0.30), trial(1, 0.35, 0.05)  # lower bounds +0.20 and +0.30
    too_damaging, collapsed = trial(2, 0.9, 0.01, ratio=2.5), trial(3, 0.9, 0.01, distinct2=0.5)
    assert choose([lucky, steady, too_damaging, collapsed], limit=2.0, baseline_distinct2=0.9) == steady
    assert choose([lucky], limit=2.0, baseline_distinct2=0.9) == lucky  # the only gain within the limits
    assert choose([trial(4, -0.1, 0.0), too_damaging], limit=2.0, baseline_distinct2=0.9) is None  # no gain: nothing


def test_the_search_keeps_and_replays_as_a_run(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    store = RunStore()
    spec = SteeringSearch(make(tiny_llama, layers=(0, 1)), layers=[1], prompts=list(PROMPTS[:4]), n_trials=2,
                          max_perplexity_ratio=1e6, **SMALL)  # fmt: skip
    assert spec.layers == (1,) and spec.modes == ("add", "angular") and spec.directions == ("raise", "lower")
    text, blob = dumps(spec)
    assert loads(text, blob).digest() == spec.digest()
    messages = []
    result = spec.run(tiny_llama, lambda fraction, message: messages.append((fraction, message)))
    assert any("trial 2 of 2" in message for _, message in messages) and messages[-1][0] == 1.0
    frame = result.to_frame()
    assert len(frame) == 4 and set(frame["direction"]) == {"raise", "lower"} and frame["chosen"].sum() <= 2
    kept = store.load(store.save(new_record(tiny_llama, spec, result)))
    assert kept.kind == "steering_search" and kept.result.to_frame().equals(frame)  # (NaN angles of "add" trials equal)
    assert replay(tiny_llama, kept).matches


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"layers": (5,)}, r"no direction at layer\(s\) \[5\]"),
        ({"modes": ("add", "sideways")}, "Unknown search mode 'sideways'"),
        ({"modes": "add"}, "as a list"),
        ({"directions": ("up",)}, "Unknown direction 'up'"),
        ({"coefficient_range": (4.0, 2.0)}, "must go from low to high"),
        ({"coefficient_range": (0.0, 2.0)}, "coefficient range bound"),
        ({"angle_range": (10.0, 200.0)}, r"angle \(degrees\) range bound"),
        ({"prompts": ("one", "two")}, "at least 1 search prompt and 2 held-out prompts"),
        ({"held_out_fraction": 1.0}, "at least 1 search prompt and 2 held-out prompts"),
        ({"n_trials": 0}, "number of trials"),
        ({"max_perplexity_ratio": 0.5}, "perplexity limit"),
        ({"scorer": "reward"}, "not kept with it"),
        ({"storage_path": "/no/such/folder/search.journal"}, "existing folder"),
    ],
)
def test_bad_settings_say_what_to_fix(tiny_llama, settings, message):
    with pytest.raises(InputError, match=message):
        SteeringSearch(make(tiny_llama, layers=(0, 1)), **settings)


def test_angular_search_refuses_a_zero_direction(tiny_llama):
    vector = make(tiny_llama, layers=(0, 1))
    zero = SteeringVector((0, 1), torch.stack([vector.direction(0), torch.zeros(tiny_llama.info.d_model)]),
                          model_name=vector.model_name, d_model=vector.d_model, weights_sha256=vector.weights_sha256)  # fmt: skip
    with pytest.raises(InputError, match=r"zero at layer\(s\) \[1\]"):
        SteeringSearch(zero)
    assert SteeringSearch(zero, modes=("add",)).layers == (0, 1)  # adding a zero direction is allowed (it does nothing)


def test_the_command_line_prints_the_choice_and_writes_the_trials(tiny_llama, tiny_llama_dir, tmp_path, capsys):
    from steering.__main__ import main

    vector_file = make(tiny_llama, layers=(1,)).save(tmp_path / "v.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:4]) + "\n")
    out = tmp_path / "trials.csv"
    argv = ["search", "--model", str(tiny_llama_dir), "--vector", str(vector_file), "--prompts", str(prompts), "--modes", "add",
            "--n-trials", "2", "--n-samples", "1", "--max-new-tokens", "4", "--out", str(out),
            "--journal", str(tmp_path / "s.journal")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "raise: 2 trials" in printed and "lower: 2 trials" in printed
    assert out.read_text().count("\n") == 5  # header + 2 trials per direction
    assert main([*argv[:-4], "--modes", "add,sideways"]) == 2
    assert "Unknown search mode" in capsys.readouterr().err
