"""A/B experiments: stable arms, scripted feedback checked against statistics written out by hand, persistence."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from interp.errors import InputError
from interp.loading import load_hf_model
from interp.records import RunStore
from interp.serialise import dumps, loads
from interp.tokens import tokenize
from serve.experiments import ABExperimentRun, Arm, Experiment, ExperimentBook, assign_arm, plain_json
from serve.schema import SteeringItem

HAPPY = (SteeringItem(vector="happy", coefficient=3.0),)
REPO = Path(__file__).resolve().parents[2]


def experiment(name: str = "happy-test", split: float = 0.5, metric: str = "score") -> Experiment:
    return Experiment(name, (Arm("plain"), Arm("happy", HAPPY)), split=split, metric=metric)


@pytest.fixture()
def book(tmp_path) -> ExperimentBook:
    book = ExperimentBook(tmp_path / "experiments", automatic_scores=False)
    yield book
    book.close()


def users_in(book: ExperimentBook, name: str, arm: str, count: int) -> list[str]:
    """``count`` user ids the book puts in ``arm``."""
    found = [u for u in (f"user-{i}" for i in range(2000)) if book.assign(name, u).name == arm]
    return found[:count]


# -- assignment


def test_assignment_is_the_documented_hash_and_stable(book):
    book.create(experiment())
    for i in range(200):
        user = f"someone-{i}"
        digest = hashlib.sha256(f"happy-test\0{user}".encode()).digest()
        expected = "plain" if int.from_bytes(digest[:8], "big") / 2**64 < 0.5 else "happy"
        assert book.assign("happy-test", user).name == expected
        assert book.assign("happy-test", user).name == expected  # asked again: the same


def test_assignment_is_the_same_in_a_fresh_book_and_another_process(tmp_path, book):
    book.create(experiment())
    users = [f"u{i}" for i in range(50)]
    here = [book.assign("happy-test", u).name for u in users]
    assert set(here) == {"plain", "happy"}
    fresh = ExperimentBook(book.folder, automatic_scores=False)
    assert [fresh.assign("happy-test", u).name for u in users] == here
    code = (
        "import json, sys\nfrom serve.experiments import ExperimentBook\n"
        f"book = ExperimentBook({str(book.folder)!r}, automatic_scores=False)\n"
        f"print(json.dumps([book.assign('happy-test', u).name for u in {users!r}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different salt for hash(): the arm must not depend on it
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


@pytest.mark.parametrize("split", [0.5, 0.2, 0.9])
def test_split_proportion_is_close_to_the_split(split):
    n = 20_000
    first = sum(assign_arm(experiment(split=split), f"id-{i}").name == "plain" for i in range(n))
    assert abs(first / n - split) < 4 * math.sqrt(split * (1 - split) / n)  # 4 standard errors


# -- a scripted experiment against hand computation

PLAIN_SCORES = [3.0, 4.0, 2.0, 5.0, 3.0, 4.0, 3.0, 2.0, 4.0, 3.0, 3.0, 4.0]
HAPPY_SCORES = [4.0, 5.0, 5.0, 3.0, 4.0, 5.0, 4.0, 5.0, 4.0, 3.0, 5.0, 4.0, 5.0, 4.0]
PLAIN_THUMBS = [True] * 30 + [False] * 30  # 50%
HAPPY_THUMBS = [True] * 42 + [False] * 28  # 60%


def scripted(book: ExperimentBook) -> ExperimentBook:
    book.create(experiment())
    for arm, scores, thumbs in (("plain", PLAIN_SCORES, PLAIN_THUMBS), ("happy", HAPPY_SCORES, HAPPY_THUMBS)):
        for i, user in enumerate(users_in(book, "happy-test", arm, len(thumbs))):
            rid = f"{arm}-{i}"
            book.record_response(experiment="happy-test", arm=arm, response_id=rid, user=user, prompt="Hi", text="Hello")
            book.feedback(rid, thumb=thumbs[i], score=scores[i] if i < len(scores) else None)
    book.record_response(experiment="happy-test", arm="plain", response_id="silent", user="x", prompt="Hi", text="Hello")
    return book


def test_scripted_counts_means_and_intervals(book):
    summary = scripted(book).summary("happy-test")
    plain, happy = summary.arms
    assert (plain.name, plain.responses, plain.feedback) == ("plain", 61, 60)
    assert (happy.name, happy.responses, happy.feedback) == ("happy", 70, 70)
    assert (plain.description, happy.description) == ("unsteered", "happy ×3")
    for arm, scores in ((plain, PLAIN_SCORES), (happy, HAPPY_SCORES)):
        x = np.array(scores)
        half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
        got = arm.estimate("score")
        assert got.n == len(x)
        assert got.mean == pytest.approx(x.mean(), abs=1e-12)
        assert (got.low, got.high) == pytest.approx((x.mean() - half, x.mean() + half), abs=1e-12)
    for arm, thumbs in ((plain, PLAIN_THUMBS), (happy, HAPPY_THUMBS)):
        n, p, z = len(thumbs), sum(thumbs) / len(thumbs), 1.959963984540054
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
        got = arm.estimate("thumbs")
        assert (got.n, got.mean) == (n, pytest.approx(p))
        assert (got.low, got.high) == pytest.approx((centre - half, centre + half), abs=1e-12)


def test_scripted_welch_t_test_by_hand(book):
    comparison = scripted(book).summary("happy-test").comparison("score")
    a, b = np.array(PLAIN_SCORES), np.array(HAPPY_SCORES)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p = 2 * stats.t.sf(abs(t), df)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert comparison.test == "Welch's t-test" and comparison.enough_data
    assert comparison.statistic == pytest.approx(t, rel=1e-10)
    assert comparison.p_value == pytest.approx(p, rel=1e-8)
    assert comparison.difference == pytest.approx(b.mean() - a.mean())
    assert (comparison.low, comparison.high) == pytest.approx((b.mean() - a.mean() - half, b.mean() - a.mean() + half))
    assert p < 0.05 and "significant at the 5% level" in comparison.sentence and "Not" not in comparison.sentence
    assert comparison.sentence.startswith(f"happy's mean score is {b.mean() - a.mean():.3g} higher than plain's")  # 0.952


def test_scripted_two_proportion_z_test_by_hand(book):
    summary = scripted(book).summary("happy-test")
    comparison = summary.comparison("thumbs")
    k1, n1, k2, n2 = 30, 60, 42, 70
    pooled = (k1 + k2) / (n1 + n2)
    z = (k2 / n2 - k1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = math.erfc(abs(z) / math.sqrt(2))  # two-sided normal tail
    assert comparison.test == "two-proportion z-test"
    assert comparison.statistic == pytest.approx(z, rel=1e-12)
    assert comparison.p_value == pytest.approx(p, rel=1e-9)
    assert comparison.difference == pytest.approx(0.1)
    assert p > 0.05 and "Not significant" in comparison.sentence
    assert "10 points higher" in comparison.sentence
    assert summary.sentence == summary.comparison("score").sentence  # the experiment is decided on its metric


def test_small_counts_use_fishers_exact_test(book):
    book.create(experiment())
    script = {"plain": [True] * 1 + [False] * 7, "happy": [True] * 6 + [False] * 2}
    for arm, thumbs in script.items():
        for i, user in enumerate(users_in(book, "happy-test", arm, len(thumbs))):
            book.record_response(experiment="happy-test", arm=arm, response_id=f"{arm}{i}", user=user, prompt="", text="")
            book.feedback(f"{arm}{i}", thumb=thumbs[i])
    comparison = book.summary("happy-test").comparison("thumbs")
    # Fisher by hand: hypergeometric tables with the same margins no more likely than the one seen.
    ups, n_happy, n_total = 7, 8, 16

    def chance(k: int) -> float:
        return math.comb(n_happy, k) * math.comb(n_total - n_happy, ups - k) / math.comb(n_total, ups)

    seen = chance(6)
    p = sum(chance(k) for k in range(0, ups + 1) if chance(k) <= seen * (1 + 1e-7))
    assert comparison.test == "Fisher's exact test"
    assert comparison.p_value == pytest.approx(p, rel=1e-9)


def test_too_little_data_says_so(book):
    book.create(experiment())
    for i, user in enumerate(users_in(book, "happy-test", "happy", 3)):
        book.record_response(experiment="happy-test", arm="happy", response_id=f"r{i}", user=user, prompt="", text="")
        book.feedback(f"r{i}", thumb=True, score=1.0)
    summary = book.summary("happy-test")
    comparison = summary.comparison("thumbs")
    assert not comparison.enough_data and comparison.test == "" and math.isnan(comparison.p_value)
    assert comparison.sentence.startswith("Too little data") and "plain has 0 thumbs, happy has 3" in comparison.sentence
    assert summary.arms[0].estimate("score").n == 0 and math.isnan(summary.arms[0].estimate("score").mean)


def test_later_feedback_replaces_earlier(book):
    book.create(experiment())
    book.record_response(experiment="happy-test", arm="plain", response_id="r", user="u", prompt="", text="")
    book.feedback("r", thumb=False)
    book.feedback("r", score=2.0)
    book.feedback("r", thumb=True)
    (outcome,) = book.outcomes("happy-test")
    assert (outcome.thumb, outcome.score) == (True, 2.0)


# -- automatic scores


def test_automatic_sentiment_is_vader_compound(tmp_path):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    book = ExperimentBook(tmp_path, automatic_scores=True)
    try:
        book.create(experiment())
        texts = {"a": "What a wonderful, happy day!", "b": "This is awful and sad.", "c": "The table is brown."}
        for rid, text in texts.items():
            book.record_response(experiment="happy-test", arm="plain", response_id=rid, user=rid, prompt="Say", text=text)
        assert book.wait_for_scores(timeout=60)
        vader = SentimentIntensityAnalyzer()
        by_id = {o.response_id: o for o in book.outcomes("happy-test")}
        for rid, text in texts.items():
            assert by_id[rid].sentiment == vader.polarity_scores(text)["compound"]
            assert by_id[rid].perplexity is None and by_id[rid].reward is None  # no model given
        assert ExperimentBook(tmp_path, automatic_scores=False).outcomes("happy-test") == book.outcomes("happy-test")
    finally:
        book.close()


def test_automatic_perplexity_under_the_served_model(tmp_path, monkeypatch, tiny_llama):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))  # no kept reward model here
    book = ExperimentBook(tmp_path / "experiments", model=tiny_llama)
    try:
        book.create(experiment())
        text = " the store was open"
        book.record_response(experiment="happy-test", arm="plain", response_id="r", user="u", prompt="When Mary", text=text)
        assert book.wait_for_scores(timeout=120)
        (outcome,) = book.outcomes("happy-test")
        prompt_ids = tokenize(tiny_llama, "When Mary")
        ids = tiny_llama.tokenizer(text, add_special_tokens=False).input_ids
        reference, _ = load_hf_model(tiny_llama.folder)  # plain Hugging Face, no Steerscope code path
        with torch.no_grad():
            log_probs = torch.log_softmax(reference(torch.tensor([prompt_ids + ids])).logits[0].float(), dim=-1)
        nll = -torch.stack([log_probs[len(prompt_ids) - 1 + i, t] for i, t in enumerate(ids)]).mean()
        assert outcome.perplexity == pytest.approx(math.exp(nll.item()), rel=1e-4)
        assert outcome.reward is None and outcome.sentiment is not None
    finally:
        book.close()


# -- persistence and records


def test_persistence_round_trip(book):
    scripted(book)
    before = book.summary("happy-test")
    again = ExperimentBook(book.folder, automatic_scores=False)
    assert again.list() == book.list()
    assert again.get("happy-test") == experiment()
    assert plain_json(again.summary("happy-test")) == plain_json(before)
    again.feedback("silent", thumb=True)  # one process writes, the other reads it in
    assert book.outcomes("happy-test")[-1].thumb is True
    for line in (book.folder / "experiments.jsonl").read_text().splitlines():
        json.loads(line)  # plain JSON lines


def test_a_damaged_line_costs_only_that_event(book):
    scripted(book)
    before = book.summary("happy-test")
    with open(book.folder / "experiments.jsonl", "a") as log:
        log.write('{"event": "feedback", "response_id": "nobody", "thumb": true}\n{not json\n')
    assert plain_json(ExperimentBook(book.folder, automatic_scores=False).summary("happy-test")) == plain_json(before)


def test_kept_in_the_records_and_replayed(book, tmp_path, monkeypatch, tiny_llama):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    scripted(book)
    spec = book.run_spec("happy-test")
    text, blob = dumps(spec)
    assert loads(text, blob) == spec and isinstance(spec, ABExperimentRun)
    run_id = book.keep("happy-test", model=tiny_llama, note="first week")
    kept = RunStore().load(run_id)
    assert kept.kind == "ab_experiment" and kept.note == "first week"
    assert kept.spec == spec and plain_json(kept.result) == plain_json(book.summary("happy-test"))
    assert kept.spec.experiment() == experiment()


# -- bad input


def test_bad_experiments_are_refused_with_a_message():
    cases = [
        (lambda: Experiment("x", (Arm("a"), Arm("a"))), "both called 'a'"),
        (lambda: Experiment("x", (Arm("a"),)), "exactly two arms"),
        (lambda: Experiment("x", (Arm("a"), Arm("b")), split=1.0), "between 0 and 1"),
        (lambda: Experiment("x", (Arm("a"), Arm("b")), split=0.0), "between 0 and 1"),
        (lambda: Experiment("x", (Arm("a"), Arm("b")), split=float("nan")), "finite"),
        (lambda: Experiment("x", (Arm("a"), Arm("b")), metric="vibes"), "Unknown metric"),
        (lambda: Experiment("../etc", (Arm("a"), Arm("b"))), "experiment name"),
        (lambda: Experiment("x", (Arm("a b"), Arm("b"))), "arm name"),
        (lambda: Arm("a", ({"vector": "happy"},)), "steering must be a list"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=message):
            make()


def test_bad_book_calls_are_refused_with_a_message(book):
    with pytest.raises(InputError, match=r"none yet"):
        book.assign("happy-test", "u")
    book.create(experiment())
    with pytest.raises(InputError, match="already an experiment called happy-test"):
        book.create(experiment())
    with pytest.raises(InputError, match=r"no experiment called 'nope'; the experiments are: happy-test"):
        book.assign("nope", "u")
    for user in (None, "", "   "):
        with pytest.raises(InputError, match="need a `user` field"):
            book.assign("happy-test", user)
    with pytest.raises(InputError, match="at most 256"):
        book.assign("happy-test", "u" * 300)
    with pytest.raises(InputError, match="has no arm 'other'"):
        book.record_response(experiment="happy-test", arm="other", response_id="r", user="u", prompt="", text="")
    book.record_response(experiment="happy-test", arm="plain", response_id="r", user="u", prompt="", text="")
    with pytest.raises(InputError, match="already recorded"):
        book.record_response(experiment="happy-test", arm="plain", response_id="r", user="u", prompt="", text="")
    with pytest.raises(InputError, match="no response 'missing'"):
        book.feedback("missing", thumb=True)
    with pytest.raises(InputError, match="needs a thumb"):
        book.feedback("r")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InputError, match="finite"):
            book.feedback("r", score=bad)
    with pytest.raises(InputError, match="true \\(up\\) or false"):
        book.feedback("r", thumb="yes")
    (outcome,) = book.outcomes("happy-test")
    assert (outcome.thumb, outcome.score) == (None, None)  # nothing bad was kept


def test_the_kept_reward_model_scores_responses(tmp_path, monkeypatch, tiny_llama):
    from interp.records import new_record
    from serve.feedback_scores import AutomaticScorer, kept_reward_model
    from steering.rlhf import RewardTrainingRun, builtin_preferences

    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    assert kept_reward_model(tiny_llama) is None  # nothing kept yet: no reward scores
    spec = RewardTrainingRun(tuple(builtin_preferences()[:20]), layers=(1,), steps=5)
    report = spec.run(tiny_llama)
    RunStore().save(new_record(tiny_llama, spec, report))
    reward = kept_reward_model(tiny_llama)
    assert reward is not None and torch.equal(reward.weight, report.reward_model.weight)
    scores = AutomaticScorer(tiny_llama, reward)("Can you help me?", "Sure, here is how.")
    assert scores.reward == pytest.approx(
        float(report.reward_model.score(tiny_llama, ["Can you help me?"], ["Sure, here is how."])[0])
    )
