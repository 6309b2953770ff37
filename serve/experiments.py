"""A/B tests on live traffic: split users between two steering settings, collect feedback, and compare the arms.

An :class:`Experiment` names two :class:`Arm`\\ s (e.g. unsteered vs ``happy`` ×3) and the share of users that
get the first. A request names the experiment and its ``user``; :func:`assign_arm` hashes the two with SHA-256,
so a user always lands in the same arm — across requests, processes, restarts and replicas (Python's ``hash()``
is salted per process, so it would not do). Every response is recorded with its arm; people send feedback
(thumbs up/down, or a score) by the response's id, and automatic scores (:mod:`serve.feedback_scores`) are
added in the background.

The comparison (:func:`summarise`) is the usual one for two independent groups:

* a mean per arm with a 95% *t* interval, or a thumbs-up rate with a 95% *Wilson* interval (which, unlike the
  textbook ``p ± 1.96·se``, stays inside [0, 1] and does not collapse to zero width at 0 or 100%);
* Welch's *t*-test for scores (no equal-variance assumption; the arms are rarely alike in spread), and a
  two-proportion *z*-test for thumbs, or Fisher's exact test when an expected cell count is under 5 and the normal
  approximation cannot be trusted;
* the difference (second arm minus first) with its 95% interval, and one sentence that says what it means — or
  that there is too little data yet (fewer than :data:`MIN_PER_ARM` observations in an arm).

Trust it as far as the design goes: users are assigned at random by the hash, but one user's many responses are
counted as independent, and looking at the p-value every day until it dips under 0.05 inflates false positives.

:class:`ExperimentBook` keeps everything as JSON lines in ``data/experiments/`` (one event a line, appended under
a file lock, never pickle); every process reads the same log, so replicas and the app see the same experiments.
:class:`ABExperimentRun` is the kind of run that keeps an experiment in the records like any other run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec
from interp.validation import check_choice, check_finite
from serve.feedback_scores import AUTOMATIC_MEASURES, AutomaticScorer, AutomaticScores, ScoreWorker
from serve.schema import SteeringItem

if TYPE_CHECKING:
    import fastapi

log = logging.getLogger(__name__)

METRICS = ("thumbs", "score", *AUTOMATIC_MEASURES)  # what an experiment is decided on
MEASURE_NAMES = {
    "thumbs": "thumbs-up rate",
    "score": "score",
    "sentiment": "sentiment (VADER)",
    "reward": "reward",
    "perplexity": "perplexity",
}
MIN_PER_ARM = 5  # fewer observations in an arm and the summary says there is too little data
CONFIDENCE = 0.95
MAX_USER_CHARS = 256
MAX_TEXT_CHARS = 100_000  # a response's prompt and text as kept in the log
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOG_FILE = "experiments.jsonl"


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(
            f"The {what} {name!r} cannot be used: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit."
        )
    return name


@dataclasses.dataclass(frozen=True)
class Arm:
    """One setting traffic is split to: its steering (empty = the unsteered model)."""

    name: str
    steering: tuple[SteeringItem, ...] = ()

    def __post_init__(self) -> None:
        _check_name("arm name", self.name)
        object.__setattr__(self, "steering", tuple(self.steering))
        if not all(isinstance(item, SteeringItem) for item in self.steering):
            raise InputError(f"Arm {self.name}'s steering must be a list of {{vector, coefficient, layers, positions}} items.")

    def describe(self) -> str:
        if not self.steering:
            return "unsteered"
        parts = []
        for item in self.steering:
            layers = "" if item.layers is None else f" at layers {', '.join(map(str, item.layers))}"
            parts.append(f"{item.vector} ×{item.coefficient:g}{layers}")
        return " + ".join(parts)

    def to_json(self) -> dict:
        return {"name": self.name, "steering": [item.model_dump(mode="json") for item in self.steering]}

    @classmethod
    def from_json(cls, document: dict) -> Arm:
        steering = document.get("steering") or []
        try:
            return cls(str(document["name"]), tuple(SteeringItem.model_validate(item) for item in steering))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"An arm needs a name and a list of steering items ({error}).") from None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Two arms, the share of users sent to the first (``split``), and the measure the experiment is decided on."""

    name: str
    arms: tuple[Arm, Arm]
    split: float = 0.5
    metric: Literal["thumbs", "score", "sentiment", "reward", "perplexity"] = "thumbs"

    def __post_init__(self) -> None:
        _check_name("experiment name", self.name)
        object.__setattr__(self, "arms", tuple(self.arms))
        if len(self.arms) != 2 or not all(isinstance(arm, Arm) for arm in self.arms):
            raise InputError(f"Experiment {self.name} needs exactly two arms (got {len(self.arms)}).")
        if self.arms[0].name == self.arms[1].name:
            name = self.arms[0].name
            raise InputError(f"Experiment {self.name}'s two arms are both called {name!r}; give them different names.")
        check_finite("split (share of users in the first arm)", self.split)
        if not 0.0 < self.split < 1.0:
            raise InputError(f"The split is the share of users in the first arm: a number between 0 and 1 (got {self.split:g}).")
        check_choice("metric", self.metric, METRICS)

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise InputError(f"Experiment {self.name} has no arm {name!r}; its arms are {self.arms[0].name} and {self.arms[1].name}.")

    def to_json(self) -> dict:
        return {"name": self.name, "arms": [arm.to_json() for arm in self.arms], "split": self.split, "metric": self.metric}

    @classmethod
    def from_json(cls, document: dict) -> Experiment:
        if not isinstance(document, dict) or not isinstance(document.get("arms"), list):
            raise InputError("An experiment needs a name and a list of two arms.")
        arms = tuple(Arm.from_json(arm) if isinstance(arm, dict) else arm for arm in document["arms"])
        return cls(document.get("name"), arms, document.get("split", 0.5), document.get("metric", "thumbs"))


def arm_fraction(experiment_name: str, user_id: str) -> float:
    """Where ``user_id`` falls in [0, 1) for this experiment: SHA-256 of both, the same in every process."""
    digest = hashlib.sha256(f"{experiment_name}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(experiment: Experiment, user_id: str) -> Arm:
    """The arm ``user_id`` gets: the first arm for a share ``split`` of users, the second for the rest."""
    return experiment.arms[0] if arm_fraction(experiment.name, user_id) < experiment.split else experiment.arms[1]


# ---------------------------------------------------------------------------------------------------------------
# What is kept: responses with their feedback and scores, the spec that keeps an experiment, and its summary.


@dataclasses.dataclass(frozen=True)
class KeptSteering:
    """A :class:`SteeringItem` as a record holds it (records keep dataclasses, not pydantic models)."""

    vector: str
    coefficient: float = 1.0
    layers: tuple[int, ...] | None = None
    positions: str = "all"

    def item(self) -> SteeringItem:
        return SteeringItem(vector=self.vector, coefficient=self.coefficient, layers=self.layers, positions=self.positions)


@dataclasses.dataclass(frozen=True)
class KeptArm:
    name: str
    steering: tuple[KeptSteering, ...] = ()

    def arm(self) -> Arm:
        return Arm(self.name, tuple(item.item() for item in self.steering))

    def describe(self) -> str:
        return f"{self.name}: {self.arm().describe()}"


@dataclasses.dataclass(frozen=True)
class ResponseOutcome:
    """One response's arm and every number measured on it (None = not given / not scored)."""

    response_id: str
    arm: str
    thumb: bool | None = None
    score: float | None = None
    sentiment: float | None = None
    reward: float | None = None
    perplexity: float | None = None

    def value(self, measure: str) -> float | None:
        value = getattr(self, "thumb" if measure == "thumbs" else measure)
        return None if value is None else float(value)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean (or a rate) over ``n`` observations with its 95% interval; NaN where there are too few to say."""

    measure: str
    n: int
    mean: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    name: str
    description: str  # "unsteered", "happy ×3"
    responses: int
    feedback: int  # responses with a thumb or a score
    estimates: tuple[Estimate, ...]  # one per measure, in METRICS order

    def estimate(self, measure: str) -> Estimate:
        return next(e for e in self.estimates if e.measure == measure)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Second arm minus first on one measure: the test, its statistic and p-value, the difference and its interval."""

    measure: str
    test: str  # "Welch's t-test", "two-proportion z-test", "Fisher's exact test"; "" when there is too little data
    statistic: float  # t or z; Fisher's: the odds ratio
    p_value: float
    difference: float
    low: float
    high: float
    enough_data: bool
    sentence: str


@dataclasses.dataclass(frozen=True)
class ExperimentSummary:
    name: str
    metric: str
    split: float
    arms: tuple[ArmSummary, ArmSummary]
    comparisons: tuple[Comparison, ...]  # one per measure, in METRICS order

    def comparison(self, measure: str | None = None) -> Comparison:
        """The comparison on ``measure`` (default: the experiment's own metric)."""
        wanted = measure or self.metric
        return next(c for c in self.comparisons if c.measure == wanted)

    @property
    def sentence(self) -> str:
        return self.comparison().sentence


@dataclasses.dataclass(frozen=True)
class ABExperimentRun(RunSpec):
    """An A/B experiment as kept in the records: its arms and every response's numbers; running it summarises them."""

    kind: ClassVar[str] = "ab_experiment"
    title: ClassVar[str] = "A/B experiment"

    name: str
    arms: tuple[KeptArm, KeptArm]
    split: float
    metric: str
    responses: tuple[ResponseOutcome, ...]

    def __post_init__(self) -> None:
        self.experiment()  # the same checks as a live experiment
        names = {arm.name for arm in self.arms}
        for response in self.responses:
            if response.arm not in names:
                raise InputError(f"Response {response.response_id} names arm {response.arm!r}, not in experiment {self.name}.")

    def experiment(self) -> Experiment:
        return Experiment(self.name, (self.arms[0].arm(), self.arms[1].arm()), self.split, self.metric)

    def run(self, model: LoadedModel | None = None, progress: Progress | None = None) -> ExperimentSummary:
        return summarise(self.experiment(), self.responses)

    @classmethod
    def of(cls, experiment: Experiment, responses: tuple[ResponseOutcome, ...]) -> ABExperimentRun:
        arms = tuple(
            KeptArm(arm.name, tuple(KeptSteering(i.vector, i.coefficient, i.layers, i.positions) for i in arm.steering))
            for arm in experiment.arms
        )
        return cls(experiment.name, arms, experiment.split, experiment.metric, tuple(responses))


# ---------------------------------------------------------------------------------------------------------------
# The statistics.


def mean_interval(values: list[float], measure: str) -> Estimate:
    """Mean with a 95% t interval (``mean ± t₀.₉₇₅,ₙ₋₁ · s/√n``); the bounds are NaN below two values."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Estimate(measure, 0, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(measure, n, mean, math.nan, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(measure, n, mean, mean - half, mean + half)


def wilson_interval(successes: int, n: int, measure: str = "thumbs") -> Estimate:
    """A rate with its 95% Wilson score interval."""
    from scipy import stats

    if n == 0:
        return Estimate(measure, 0, math.nan, math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    rate = successes / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return Estimate(measure, n, rate, max(0.0, centre - half), min(1.0, centre + half))


def _no_test(measure: str, sentence: str) -> Comparison:
    return Comparison(measure, "", math.nan, math.nan, math.nan, math.nan, math.nan, False, sentence)


def _too_little(measure: str, names: tuple[str, str], counts: tuple[int, int]) -> Comparison:
    what = "thumbs" if measure == "thumbs" else f"{MEASURE_NAMES[measure]} values"
    return _no_test(
        measure,
        f"Too little data to compare {MEASURE_NAMES[measure]}: {names[0]} has {counts[0]} {what}, {names[1]} has {counts[1]}; "
        f"at least {MIN_PER_ARM} in each arm are needed.",
    )


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def _verdict(p: float) -> str:
    if p < 1 - CONFIDENCE:
        return "The difference is significant at the 5% level."
    return "Not significant at the 5% level: the data do not tell the arms apart yet."


def compare_means(measure: str, names: tuple[str, str], first: list[float], second: list[float]) -> Comparison:
    """Welch's t-test of second minus first, and the difference's 95% interval (Welch–Satterthwaite degrees of freedom)."""
    from scipy import stats

    if min(len(first), len(second)) < MIN_PER_ARM:
        return _too_little(measure, names, (len(first), len(second)))
    n1, n2 = len(first), len(second)
    m1, m2 = math.fsum(first) / n1, math.fsum(second) / n2
    v1 = math.fsum((v - m1) ** 2 for v in first) / (n1 - 1)
    v2 = math.fsum((v - m2) ** 2 for v in second) / (n2 - 1)
    se = math.sqrt(v1 / n1 + v2 / n2)
    difference = m2 - m1
    label = MEASURE_NAMES[measure]
    if se <= 1e-12 * max(1.0, abs(m1), abs(m2)):  # no spread at all (up to rounding): t is undefined
        sentence = f"Every {label} value is the same within each arm ({names[0]} {m1:g}, {names[1]} {m2:g}): no test possible."
        return _no_test(measure, sentence)
    with warnings.catch_warnings():  # near-constant arms: scipy warns of rounding; the spread check above decides
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(second, first, equal_var=False)
    df = (v1 / n1 + v2 / n2) ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    p = float(test.pvalue)
    direction = "higher" if difference >= 0 else "lower"
    sentence = (
        f"{names[1]}'s mean {label} is {abs(difference):.3g} {direction} than {names[0]}'s "
        f"(95% CI {difference - half:.3g} to {difference + half:.3g}); {_p_text(p)} (Welch's t-test). {_verdict(p)}"
    )
    low, high = difference - half, difference + half
    return Comparison(measure, "Welch's t-test", float(test.statistic), p, difference, low, high, True, sentence)


def compare_rates(names: tuple[str, str], first: tuple[int, int], second: tuple[int, int]) -> Comparison:
    """Thumbs-up rates ``(ups, n)``: two-proportion z-test (pooled), or Fisher's exact test when an expected count is
    under 5; the difference's interval is the unpooled Wald interval."""
    from scipy import stats

    (k1, n1), (k2, n2) = first, second
    if min(n1, n2) < MIN_PER_ARM:
        return _too_little("thumbs", names, (n1, n2))
    p1, p2 = k1 / n1, k2 / n2
    difference = p2 - p1
    z_crit = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    half = z_crit * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (k1 + k2) / (n1 + n2)
    expected = [n * pooled for n in (n1, n2)] + [n * (1 - pooled) for n in (n1, n2)]
    if min(expected) < 5:
        odds, p = stats.fisher_exact([[k2, n2 - k2], [k1, n1 - k1]])
        test, statistic = "Fisher's exact test", float(odds)
    else:
        statistic = difference / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        test, p = "two-proportion z-test", 2 * float(stats.norm.sf(abs(statistic)))
    p = float(p)
    points = 100 * difference
    direction = "higher" if points >= 0 else "lower"
    sentence = (
        f"{names[1]}'s thumbs-up rate is {abs(points):.0f} points {direction} than {names[0]}'s "
        f"({100 * p2:.0f}% vs {100 * p1:.0f}%; 95% CI {100 * (difference - half):.0f} to {100 * (difference + half):.0f} "
        f"points); {_p_text(p)} ({test}). {_verdict(p)}"
    )
    return Comparison("thumbs", test, statistic, p, difference, difference - half, difference + half, True, sentence)


def summarise(experiment: Experiment, responses: tuple[ResponseOutcome, ...] | list[ResponseOutcome]) -> ExperimentSummary:
    """Per-arm counts and estimates, and the comparison of the second arm against the first on every measure."""
    names = (experiment.arms[0].name, experiment.arms[1].name)
    by_arm = {name: [r for r in responses if r.arm == name] for name in names}
    values = {
        (name, measure): [v for r in by_arm[name] if (v := r.value(measure)) is not None and math.isfinite(v)]
        for name in names
        for measure in METRICS
    }
    arms = []
    for arm in experiment.arms:
        rows = by_arm[arm.name]
        thumbs = values[arm.name, "thumbs"]
        estimates = [wilson_interval(int(sum(thumbs)), len(thumbs))]
        estimates += [mean_interval(values[arm.name, m], m) for m in METRICS[1:]]
        given = sum(r.thumb is not None or r.score is not None for r in rows)
        arms.append(ArmSummary(arm.name, arm.describe(), len(rows), given, tuple(estimates)))
    rates = [(int(sum(values[n, "thumbs"])), len(values[n, "thumbs"])) for n in names]
    comparisons = [compare_rates(names, rates[0], rates[1])]
    comparisons += [compare_means(m, names, values[names[0], m], values[names[1], m]) for m in METRICS[1:]]
    return ExperimentSummary(experiment.name, experiment.metric, experiment.split, (arms[0], arms[1]), tuple(comparisons))


# ---------------------------------------------------------------------------------------------------------------
# The book: experiments, responses, feedback and scores, as one append-only JSON-lines log.


@dataclasses.dataclass
class _Response:
    experiment: str
    arm: str
    user: str
    prompt: str
    text: str
    thumb: bool | None = None
    score: float | None = None
    scores: AutomaticScores = dataclasses.field(default_factory=AutomaticScores)

    def outcome(self, response_id: str) -> ResponseOutcome:
        s = self.scores
        return ResponseOutcome(response_id, self.arm, self.thumb, self.score, s.sentiment, s.reward, s.perplexity)


class ExperimentBook:
    """Experiments and their responses, kept in ``folder`` (default ``data/experiments``); safe across threads.

    Every change is one JSON line appended under a file lock, and every read first takes in lines other processes
    appended, so several server replicas and the app share one book.

    Args:
        folder: where the log lives.
        model: the served model. With it, automatic scores include perplexity and the kept reward model, and
            :meth:`keep` can name it in the record; without it, sentiment only.
        automatic_scores: False to record no automatic scores at all.
    """

    def __init__(
        self, folder: str | Path | None = None, *, model: LoadedModel | None = None, automatic_scores: bool = True
    ) -> None:
        from interp.records.record import data_folder

        self.folder = Path(folder) if folder is not None else data_folder() / "experiments"
        self.model = model
        self._path = self.folder / LOG_FILE
        self._lock = threading.RLock()
        self._offset = 0
        self._experiments: dict[str, Experiment] = {}
        self._responses: dict[str, _Response] = {}
        self._created: dict[str, str] = {}
        self._worker: ScoreWorker | None = None
        if automatic_scores:
            from serve.feedback_scores import kept_reward_model

            reward = kept_reward_model(model) if model is not None else None
            self._worker = ScoreWorker(AutomaticScorer(model, reward), self._deliver_scores)
        with self._lock:
            self._refresh()

    # -- reading and writing the log

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """This thread and process alone may change the book; what others wrote is read in first."""
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                handle = open(self.folder / "experiments.lock", "a")  # noqa: SIM115 (held across the block)
            except OSError as error:
                raise InputError(f"Cannot write the experiments in {self.folder} ({error.strerror}).") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._refresh()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def _append(self, event: dict) -> None:
        line = (json.dumps(event, allow_nan=False, ensure_ascii=False) + "\n").encode()
        descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)  # one write of a whole line: a reader never sees half an event from us
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self._refresh()

    def _refresh(self) -> None:
        """Apply the lines appended since the last read (complete lines only: a line still being written waits)."""
        try:
            with open(self._path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            try:
                self._apply(json.loads(raw))
            except (ValueError, KeyError, TypeError, InputError) as error:  # a damaged line costs that event only
                log.warning("Skipped a damaged line in %s: %s", self._path, error)
        self._offset += end

    def _apply(self, event: dict) -> None:
        kind = event["event"]
        if kind == "experiment":
            experiment = Experiment.from_json(event["experiment"])
            self._experiments[experiment.name] = experiment
            self._created[experiment.name] = event.get("time", "")
        elif kind == "response":
            self._responses[event["response_id"]] = _Response(
                event["experiment"], event["arm"], event["user"], event.get("prompt", ""), event.get("text", "")
            )
        elif kind == "feedback":
            response = self._responses[event["response_id"]]
            if event.get("thumb") is not None:
                response.thumb = bool(event["thumb"])
            if event.get("score") is not None:
                response.score = float(event["score"])
        elif kind == "scores":
            response = self._responses[event["response_id"]]
            response.scores = AutomaticScores(event.get("sentiment"), event.get("reward"), event.get("perplexity"))

    # -- experiments

    def create(self, experiment: Experiment) -> Experiment:
        """Start ``experiment``; its name must be new."""
        if not isinstance(experiment, Experiment):
            raise InputError("create() takes an Experiment.")
        with self._writing():
            if experiment.name in self._experiments:
                raise InputError(f"There is already an experiment called {experiment.name}; choose another name.")
            self._append({"event": "experiment", "time": _now(), "experiment": experiment.to_json()})
        return experiment

    def get(self, name: str) -> Experiment:
        with self._lock:
            self._refresh()
            if name not in self._experiments:
                known = ", ".join(sorted(self._experiments)) or "none yet (create one with POST /v1/experiments)"
                raise InputError(f"There is no experiment called {str(name)[:64]!r}; the experiments are: {known}.")
            return self._experiments[name]

    def list(self) -> tuple[Experiment, ...]:
        """Every experiment, oldest first."""
        with self._lock:
            self._refresh()
            return tuple(self._experiments.values())

    def assign(self, name: str, user: str | None) -> Arm:
        """The arm ``user`` gets in experiment ``name`` (always the same one)."""
        experiment = self.get(name)
        return assign_arm(experiment, _check_user(experiment.name, user))

    # -- responses and feedback

    def record_response(self, *, experiment: str, arm: str, response_id: str, user: str, prompt: str, text: str) -> None:
        """Keep a served response with its arm, and queue its automatic scores."""
        found = self.get(experiment)
        found.arm(arm)
        user = _check_user(found.name, user)
        if not isinstance(response_id, str) or not 0 < len(response_id) <= 128:
            raise InputError("A response id must be a non-empty string of at most 128 characters.")
        prompt, text = str(prompt)[:MAX_TEXT_CHARS], str(text)[:MAX_TEXT_CHARS]
        with self._writing():
            if response_id in self._responses:
                raise InputError(f"Response {response_id} is already recorded.")
            self._append(
                {"event": "response", "time": _now(), "experiment": found.name, "arm": arm, "response_id": response_id,
                 "user": user, "prompt": prompt, "text": text}
            )  # fmt: skip
        if self._worker is not None:
            self._worker.submit(response_id, prompt, text)

    def feedback(self, response_id: str, *, thumb: bool | None = None, score: float | None = None) -> None:
        """Record a person's judgement of a response: thumbs up (True) / down (False), a score, or both.

        Later feedback on the same response replaces earlier feedback of the same kind."""
        if thumb is None and score is None:
            raise InputError("Feedback needs a thumb (true for up, false for down) or a score (a number), or both.")
        if thumb is not None and not isinstance(thumb, bool):
            raise InputError(f"The thumb must be true (up) or false (down) (got {thumb!r}).")
        if score is not None:
            check_finite("score", score)
        with self._writing():
            if response_id not in self._responses:
                raise InputError(
                    f"There is no response {str(response_id)[:128]!r} in any experiment; use the response_id from a reply's "
                    "steerscope field."
                )
            self._append({"event": "feedback", "time": _now(), "response_id": response_id, "thumb": thumb, "score": score})

    def _deliver_scores(self, response_id: str, scores: AutomaticScores) -> None:
        clean = {k: (v if v is not None and math.isfinite(v) else None) for k, v in dataclasses.asdict(scores).items()}
        with self._writing():
            self._append({"event": "scores", "time": _now(), "response_id": response_id, **clean})

    def wait_for_scores(self, timeout: float | None = None) -> bool:
        """Wait until every queued response has its automatic scores (False when ``timeout`` passed first)."""
        return True if self._worker is None else self._worker.wait(timeout)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    # -- results

    def outcomes(self, name: str) -> tuple[ResponseOutcome, ...]:
        experiment = self.get(name)
        with self._lock:
            return tuple(r.outcome(i) for i, r in self._responses.items() if r.experiment == experiment.name)

    def run_spec(self, name: str) -> ABExperimentRun:
        """The experiment as a kind of run: what "Keep" stores in the records."""
        return ABExperimentRun.of(self.get(name), self.outcomes(name))

    def summary(self, name: str) -> ExperimentSummary:
        return self.run_spec(name).run()

    def keep(self, name: str, *, note: str = "", model: LoadedModel | None = None) -> str:
        """Save the experiment and its summary in the records (the Experiments page lists it); returns the run id."""
        from interp.records import RunStore, new_record

        model = model or self.model
        if model is None:
            raise InputError("Keeping an experiment needs the served model (start the book with model=...).")
        spec = self.run_spec(name)
        return RunStore().save(new_record(model, spec, spec.run(), note=note or f"A/B experiment {name}"))


def _check_user(experiment: str, user: Any) -> str:
    if user is None or (isinstance(user, str) and not user.strip()):
        raise InputError(
            f"Requests in experiment {experiment} need a `user` field (any stable id for the person, e.g. a hashed account "
            "id): it decides their arm."
        )
    if not isinstance(user, str) or len(user) > MAX_USER_CHARS:
        raise InputError(f"The `user` field must be a string of at most {MAX_USER_CHARS} characters.")
    return user


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------------------------------------------
# HTTP routes.


def plain_json(value: Any) -> Any:
    """A summary as JSON: dataclasses to objects, NaN and infinities to null (JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ArmBody(BaseModel):
    """One arm in ``POST /v1/experiments``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    steering: list[SteeringItem] = Field(default_factory=list)


class ExperimentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arms: list[ArmBody]
    split: float = 0.5
    metric: str = "thumbs"


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str
    thumb: bool | None = None
    score: float | None = None


class KeepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = ""


def experiments_router(book: ExperimentBook) -> fastapi.APIRouter:
    """``POST/GET /v1/experiments``, ``GET /v1/experiments/{name}`` (summary), ``POST /v1/experiments/{name}/keep``,
    ``POST /v1/feedback``. Bad input raises :class:`InputError`; the app turns it into the OpenAI error shape."""
    import anyio
    import fastapi

    def experiment_json(experiment: Experiment) -> dict:
        return {"object": "experiment", **experiment.to_json(), "arm_descriptions": [a.describe() for a in experiment.arms]}

    router = fastapi.APIRouter(tags=["experiments"])

    @router.post("/v1/experiments")
    async def create_experiment(body: ExperimentBody) -> dict:
        arms = tuple(Arm(arm.name, tuple(arm.steering)) for arm in body.arms)
        experiment = Experiment(body.name, arms, body.split, body.metric)  # type: ignore[arg-type]
        return experiment_json(await anyio.to_thread.run_sync(book.create, experiment))

    @router.get("/v1/experiments")
    async def list_experiments() -> dict:
        return {"object": "list", "data": [experiment_json(e) for e in await anyio.to_thread.run_sync(book.list)]}

    @router.get("/v1/experiments/{name}")
    async def experiment_summary(name: str) -> dict:
        experiment = await anyio.to_thread.run_sync(book.get, name)
        summary = await anyio.to_thread.run_sync(book.summary, name)
        return {"object": "experiment.summary", "experiment": experiment_json(experiment), **plain_json(summary),
                "sentence": summary.sentence}  # fmt: skip

    @router.post("/v1/experiments/{name}/keep")
    async def keep_experiment(name: str, body: KeepBody) -> dict:
        run_id = await anyio.to_thread.run_sync(lambda: book.keep(name, note=body.note))
        return {"object": "experiment.kept", "name": name, "run_id": run_id}

    @router.post("/v1/feedback")
    async def feedback(body: FeedbackBody) -> dict:
        await anyio.to_thread.run_sync(lambda: book.feedback(body.response_id, thumb=body.thumb, score=body.score))
        return {"object": "feedback", "response_id": body.response_id, "thumb": body.thumb, "score": body.score}

    return router
