"""Automatic steering search: Optuna's TPE over layer, mode and strength, judged on prompts it never saw.

A sweep evaluates a grid someone guessed. A search lets a sampler choose where to look: for each direction on its
own — ``"raise"`` the behaviour (steer along the vector: a positive coefficient, or a rotation toward it) and
``"lower"`` it (against the vector: a negative coefficient, or a rotation away) — a multi-objective TPE study
(Optuna) proposes a layer, a mode (``"add"``: ``x + c·d``, the coefficient ``c`` on a log scale; ``"angular"``:
rotate toward ``d̂`` by an angle in degrees, :mod:`steering.angular`) and its strength, and every trial is an
evaluation as :func:`steering.sweep.evaluate` makes one: samples of the *search* prompts with fixed seeds, unsteered
(once per search) and steered, scored by an independent scorer. The two objectives are the behaviour gain toward
the direction (maximised) and the perplexity ratio, steered ÷ unsteered text under the unsteered model (minimised);
KL(unsteered ‖ steered) in nats and distinct-2 are kept beside them.

The chosen point of a direction: among the trials within the perplexity limit (2x by default) whose distinct-2 has
not collapsed (≥ 0.8x the unsteered text's), the largest *reliable* gain — the gain less its standard error over the
search prompts, so that the best of many noisy tries is not simply the luckiest. It is then evaluated once on the
*held-out* prompts — a deterministic split by seed that the search never saw — with its gain, perplexity ratio, KL,
distinct-2 and the per-prompt effects of :mod:`steering.reliability` (confidence interval over prompts,
anti-steerable fraction). Read the held-out figures, not the search ones: the chosen point is the best of many tries
on the search prompts, so its search gain is biased upwards.

With a ``storage_path`` the studies live in an Optuna journal file (appended under a file lock): running the same
spec again continues each study up to ``n_trials`` without evaluating the finished trials again, and a stopped
search keeps the trials it finished. The study name is a digest of every setting that changes a trial's numbers
(not ``n_trials``), so raising ``n_trials`` continues a study while any other change starts a fresh one. Each trial's
sampler is seeded from the seed and the number of trials before it, so a resumed search proposes what an
uninterrupted one would have.

Example:
    >>> spec = SteeringSearch(vector, n_trials=16, storage_path="search.journal")
    >>> result = spec.run(model)
    >>> result.direction("raise").held_out.gain
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import numpy as np

from interp.errors import InputError
from interp.generation import Generation, generate_batch
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_choice, check_count, check_finite, default_of
from steering.angular import angular_hooks
from steering.apply import POSITION_MODES, steering_hooks
from steering.kl import KLDamage, mean_kl
from steering.reliability import PromptEffects, per_prompt_effects
from steering.runs import (
    MAX_SAMPLES,
    Positions,
    ScorerName,
    behaviour_scorer,
    check_prompts,
    check_sampling,
    check_scorer,
    check_vector_layers,
)
from steering.scores import Scorer
from steering.sweep import MAX_PERPLEXITY_RATIO, NEUTRAL_PROMPTS, Evaluation, TextScores, score_texts
from steering.vector import SteeringVector

if TYPE_CHECKING:
    import optuna

    from steering.rlhf import RewardModel

SearchMode = Literal["add", "angular"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
SearchDirection = Literal["raise", "lower"]
SEARCH_DIRECTIONS: tuple[str, ...] = get_args(SearchDirection)
MAX_TRIALS = 1_000
STARTUP_TRIALS = 6  # random trials before TPE models the front: a third of a 16-trial search
COLLAPSE_FRACTION = 0.8  # distinct-2 below this share of the unsteered text's is collapsed repetition (as the sweep)
TRIAL_FORMAT = 2  # what a journal's trial records (2: with gain_se); a journal of another format starts new studies
ANGULAR_MODE = "toward"  # angles rotate by θ toward d̂ (negative: away), so 0° is no steering, as coefficient 0 is


@dataclasses.dataclass(frozen=True)
class SearchTrial:
    """One setting the search tried, scored on the search prompts.

    Attributes:
        layer, mode: Where and how it steered (``"add"`` or ``"angular"``).
        coefficient: The signed coefficient of ``"add"`` (negative when lowering); NaN for ``"angular"``.
        angle: The signed angle in degrees of ``"angular"`` (negative turns away from the direction); NaN for ``"add"``.
        behaviour: The steered samples' mean behaviour (scorer units).
        gain: Behaviour gain toward the search's direction: steered − unsteered mean, negated when lowering.
        gain_se: The gain's standard error over the search prompts (each prompt's steered − unsteered mean, paired by
            the same seeds; 0 with one prompt). The choice ranks trials by ``gain − gain_se``.
        perplexity_ratio: Steered ÷ unsteered corpus perplexity under the unsteered model (inf where unknown).
        kl: Mean KL(unsteered ‖ steered) over generated positions of each prompt's first sample, nats.
        distinct2: The steered samples' mean distinct-2.
        on_front: On the Pareto front of its direction's trials within the limits (perplexity ratio and distinct-2):
            no such trial has more gain and less damage. (Optuna's ``best_trials`` of the constrained study.)
    """

    number: int
    layer: int
    mode: str
    coefficient: float
    angle: float
    behaviour: float
    gain: float
    gain_se: float
    perplexity_ratio: float
    kl: float
    distinct2: float
    on_front: bool
    seconds: float = dataclasses.field(compare=False)  # how long it took: not part of what the trial found

    @property
    def reliable_gain(self) -> float:
        """``gain − gain_se``: what the choice ranks by, so a lucky draw on a few prompts does not win."""
        return self.gain - self.gain_se

    @property
    def strength(self) -> float:
        """The coefficient of an additive trial, the angle (degrees) of an angular one."""
        return self.coefficient if self.mode == "add" else self.angle

    def strength_text(self) -> str:
        """The signed strength as a reader writes it: ``"−2.25"`` (a coefficient) or ``"+40°"`` (an angle)."""
        return signed(self.coefficient) if self.mode == "add" else f"{signed(self.angle)}°"

    def describe(self) -> str:
        """E.g. ``"layer 4, add 3.2 × the vector"`` or ``"layer 4, rotate −40°"``."""
        how = f"add {signed(self.coefficient)} × the vector" if self.mode == "add" else f"rotate {signed(self.angle)}°"
        return f"layer {self.layer}, {how}"


@dataclasses.dataclass(frozen=True)
class HeldOutCheck:
    """The chosen setting evaluated once on the held-out prompts.

    Attributes:
        evaluation: Unsteered and steered samples of the held-out prompts (same seeds); its ``coefficient`` is the
            trial's strength (a coefficient, or an angle in degrees for ``"angular"``).
        gain: Behaviour gain toward the direction (negated when lowering), scorer units.
        perplexity_ratio: Steered ÷ unsteered corpus perplexity.
        kl: KL(unsteered ‖ steered) on the steered continuations, nats.
        distinct2, baseline_distinct2: Mean distinct-2 of the steered and the unsteered samples.
        reliability: Per-prompt effects: confidence interval over the held-out prompts and the anti-steerable fraction.
    """

    evaluation: Evaluation
    gain: float
    perplexity_ratio: float
    kl: KLDamage
    distinct2: float
    baseline_distinct2: float
    reliability: PromptEffects


@dataclasses.dataclass(frozen=True)
class DirectionSearch:
    """One direction's study: every trial, the chosen point, and its held-out check (None when nothing qualified)."""

    direction: str
    study_name: str
    trials: tuple[SearchTrial, ...]
    chosen: SearchTrial | None
    held_out: HeldOutCheck | None

    @property
    def front(self) -> tuple[SearchTrial, ...]:
        """The Pareto trials, least damage first."""
        return tuple(sorted((t for t in self.trials if t.on_front), key=lambda t: (t.perplexity_ratio, -t.gain)))


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The searches of every direction, the prompt split and the unsteered baseline of the search prompts."""

    searches: tuple[DirectionSearch, ...]
    search_prompts: tuple[str, ...]
    held_out_prompts: tuple[str, ...]
    baseline: TextScores
    scorer: str
    max_perplexity_ratio: float
    seconds: float

    def direction(self, name: str) -> DirectionSearch:
        """The search of direction ``name`` (``"raise"`` or ``"lower"``)."""
        for search in self.searches:
            if search.direction == name:
                return search
        raise InputError(f"This search has no {name!r} direction; it searched {', '.join(s.direction for s in self.searches)}.")

    def to_frame(self):
        """One row per trial: direction, setting, objectives, KL, distinct-2, ``on_front`` and ``chosen``."""
        import pandas as pd

        rows = []
        for search in self.searches:
            chosen = None if search.chosen is None else search.chosen.number
            for t in search.trials:
                rows.append(
                    {
                        "direction": search.direction,
                        "trial": t.number,
                        "layer": t.layer,
                        "mode": t.mode,
                        "coefficient": t.coefficient,
                        "angle": t.angle,
                        "behaviour_gain": t.gain,
                        "perplexity_ratio": t.perplexity_ratio,
                        "kl": t.kl,
                        "distinct2": t.distinct2,
                        "on_front": t.on_front,
                        "chosen": t.number == chosen,
                    }
                )
        return pd.DataFrame(rows)


def signed(value: float) -> str:
    """``value`` to 3 significant figures with its sign, a true minus (−2.25, +3.2), so "add −2.25" reads as one number."""
    return f"{value:+.3g}".replace("-", "\u2212")


def split_prompts(prompts: Sequence[str], held_out_fraction: float, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(search, held_out)``: a seeded shuffle puts ``round(fraction × n)`` prompts (at least 2) in the held-out
    split; each split keeps the prompts' order. Raises InputError when either split would be too small."""
    check_finite("held-out fraction", held_out_fraction, low=0.0, high=1.0)
    n = len(prompts)
    n_held = max(2, round(held_out_fraction * n))  # the per-prompt interval needs 2 prompts
    if n - n_held < 1 or not 0.0 < held_out_fraction < 1.0:
        raise InputError(
            f"A search needs at least 1 search prompt and 2 held-out prompts; {n} prompt(s) with a held-out fraction of "
            f"{held_out_fraction:g} do not give both. Add prompts (at least 3) or choose a fraction between 0 and 1."
        )
    held = set(np.random.default_rng(seed).permutation(n)[:n_held].tolist())
    search = tuple(p for i, p in enumerate(prompts) if i not in held)
    return search, tuple(p for i, p in enumerate(prompts) if i in held)


@dataclasses.dataclass(frozen=True)
class _Sampling:
    n_samples: int
    max_new_tokens: int
    temperature: float
    seed: int
    positions: str

    def samples(self, model: LoadedModel, prompts: Sequence[str], hooks) -> list[Generation]:
        grouped = generate_batch(
            model, list(prompts), max_new_tokens=self.max_new_tokens, n_samples=self.n_samples,
            temperature=self.temperature, seed=self.seed, hooks=hooks,
        )  # fmt: skip
        return [g for group in grouped for g in group]


def setting_hooks(model: LoadedModel, vector: SteeringVector, layer: int, mode: str, strength: float, positions: str):
    """The hooks of one searched setting: ``strength`` is the signed coefficient (``"add"``) or angle in degrees."""
    if mode == "add":
        return steering_hooks(model, vector, strength, layers=[layer], positions=positions)
    return angular_hooks(model, vector, strength, layers=[layer], positions=positions, mode=ANGULAR_MODE)


def _kl(model: LoadedModel, samples: Sequence[Generation], hooks) -> KLDamage:
    if not any(g.token_ids for g in samples):  # nothing generated: no position to compare
        return KLDamage((math.nan,) * len(samples), ((),) * len(samples), math.nan)
    return mean_kl(model, [g.prompt_token_ids for g in samples], [g.token_ids for g in samples], hooks)


def _ratio(steered: TextScores, unsteered: TextScores) -> float:
    ratio = steered.mean_perplexity / unsteered.mean_perplexity
    return ratio if math.isfinite(ratio) else math.inf  # unknown damage counts as the worst, never as none


def _toward(gain: float, direction: str) -> float:
    return gain if direction == "raise" else -gain


def _acceptable(trial: SearchTrial, limit: float, baseline_distinct2: float) -> bool:
    return trial.perplexity_ratio <= limit and trial.distinct2 >= COLLAPSE_FRACTION * baseline_distinct2


def choose(trials: Sequence[SearchTrial], limit: float, baseline_distinct2: float) -> SearchTrial | None:
    """Among the trials that gain (> 0) within the perplexity limit and whose repetition has not collapsed, the one
    with the largest reliable gain (gain less one standard error over the search prompts).

    Why not the largest gain, as a sweep chooses: the best of many noisy trials is mostly the luckiest. On the default
    model the largest-gain "lower" setting gained +0.51 on the search prompts and −0.01 held out; ranking by the lower
    bound prefers a setting that moved most prompts over one that moved a few a lot.
    """
    allowed = [t for t in trials if t.gain > 0 and _acceptable(t, limit, baseline_distinct2)]
    return max(allowed, key=lambda t: (t.reliable_gain, -t.perplexity_ratio), default=None)


def paired_gain(steered: TextScores, unsteered: TextScores, n_prompts: int, direction: str) -> tuple[float, float]:
    """``(gain, standard error)`` toward ``direction`` from samples grouped by prompt (same seeds on both sides).

    The standard error is over prompts: each prompt's steered − unsteered mean counts once (prompts whose scores
    are not all finite are left out of it); 0 where fewer than 2 prompts have one.
    """
    gain = _toward(steered.mean_behaviour - unsteered.mean_behaviour, direction)
    effect = np.asarray(steered.behaviour, float).reshape(n_prompts, -1).mean(1)
    effect = effect - np.asarray(unsteered.behaviour, float).reshape(n_prompts, -1).mean(1)
    effect = effect[np.isfinite(effect)]
    se = float(effect.std(ddof=1) / math.sqrt(len(effect))) if len(effect) >= 2 else 0.0
    return gain, se


def pareto_numbers(points: Sequence[tuple[int, float, float]]) -> set[int]:
    """Numbers of the ``(number, gain, perplexity_ratio)`` points no other point beats on both (more gain, less damage)."""
    front = set()
    for number, gain, ratio in points:
        if not any(g >= gain and r <= ratio and (g > gain or r < ratio) for _, g, r in points):
            front.add(number)
    return front


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns that grouped TPE is experimental; a search reports its own progress."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(before)


def _storage(storage_path: str | None):
    if storage_path is None:
        return None  # Optuna's in-memory storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(storage_path))


def _sampler(seed: int, done: int) -> optuna.samplers.BaseSampler:
    import optuna

    # multivariate + group: TPE models layer, mode and strength jointly, with the strength conditional on the mode
    derived = int.from_bytes(hashlib.sha256(f"{seed}:{done}".encode()).digest()[:4], "little")
    return optuna.samplers.TPESampler(seed=derived, n_startup_trials=STARTUP_TRIALS, multivariate=True, group=True)


def _suggest(trial: optuna.Trial, layers, modes, coefficient_range, angle_range) -> tuple[int, str, float]:
    layer = trial.suggest_categorical("layer", list(layers))
    mode = trial.suggest_categorical("mode", list(modes))
    if mode == "add":
        return int(layer), mode, trial.suggest_float("coefficient", *coefficient_range, log=True)
    return int(layer), mode, trial.suggest_float("angle", *angle_range)


def _frozen_trial(frozen: optuna.trial.FrozenTrial, direction: str) -> SearchTrial:
    """A finished Optuna trial as plain values (the result keeps no Optuna object)."""
    params, attrs = frozen.params, frozen.user_attrs
    sign = 1.0 if direction == "raise" else -1.0
    mode = params["mode"]
    magnitude = params["coefficient"] if mode == "add" else params["angle"]
    return SearchTrial(
        number=int(frozen.number),
        layer=int(params["layer"]),
        mode=mode,
        coefficient=sign * magnitude if mode == "add" else math.nan,
        angle=sign * magnitude if mode == "angular" else math.nan,
        behaviour=float(attrs["behaviour"]),
        gain=float(frozen.values[0]),
        gain_se=float(attrs["gain_se"]),
        perplexity_ratio=float(frozen.values[1]),
        kl=float(attrs["kl"]),
        distinct2=float(attrs["distinct2"]),
        on_front=False,
        seconds=float(attrs["seconds"]),
    )


def search(
    model: LoadedModel,
    vector: SteeringVector,
    scorer: Scorer,
    *,
    layers: Sequence[int] = (),
    coefficient_range: tuple[float, float] = (0.5, 16.0),
    angle_range: tuple[float, float] = (5.0, 90.0),
    modes: Sequence[str] = SEARCH_MODES,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    held_out_fraction: float = 1 / 3,
    n_trials: int = 16,
    directions: Sequence[str] = SEARCH_DIRECTIONS,
    max_perplexity_ratio: float = MAX_PERPLEXITY_RATIO,
    n_samples: int = 2,
    held_out_samples: int = 0,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    positions: str = "all",
    seed: int = 0,
    storage_path: str | None = None,
    study_key: str = "",
    progress: Progress | None = None,
) -> SearchResult:
    """Search layer, mode and strength for each direction with multi-objective TPE, then check the choice held out.

    Args:
        vector: Points toward more of the behaviour (as :func:`steering.make.mean_difference` makes it: positive −
            negative); ``"lower"`` steers against it.
        scorer: The behaviour measure (independent of the steered model).
        layers: The layers to search (empty: all the vector's layers).
        coefficient_range: ``(low, high)`` magnitude of the additive coefficient, searched on a log scale.
        angle_range: ``(low, high)`` magnitude of the rotation in degrees (0…180), searched on a linear scale.
        modes: ``"add"`` and/or ``"angular"``.
        prompts: Split by ``seed`` into search and held-out prompts (:func:`split_prompts`).
        n_trials: Finished trials per direction (a resumed study runs only the ones it lacks).
        directions: ``"raise"`` and/or ``"lower"``, each its own study.
        max_perplexity_ratio: The damage limit of the chosen point (× the unsteered text's perplexity).
        n_samples, max_new_tokens, temperature, seed, positions: Sampling, as :func:`steering.sweep.evaluate`; every
            trial uses the same seeds, so trials differ only by their steering.
        held_out_samples: Samples per prompt of the held-out check (0: twice ``n_samples``, at most
            :data:`~steering.runs.MAX_SAMPLES`). It is one evaluation, not one per trial, so more samples cost little and
            narrow the figure the search is judged by: on SmolLM2 with 4 samples, the same setting's held-out gain moved
            by ±0.15 from one seed to another.
        storage_path: An Optuna journal file to keep the studies in (resumable); None keeps them in memory.
        study_key: Mixed into the study names; callers pass what the settings here do not show (a reward model).
        progress: ``(fraction, message)`` after each trial; an exception it raises stops the search, and the
            finished trials stay in the journal.
    """
    import optuna

    chosen_layers = tuple(layers or vector.layers)
    search_prompts, held_out_prompts = split_prompts(prompts, held_out_fraction, seed)
    sampling = _Sampling(n_samples, max_new_tokens, temperature, seed, positions)
    held_out_sampling = dataclasses.replace(sampling, n_samples=held_out_samples or min(2 * n_samples, MAX_SAMPLES))
    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    report(0.0, "Sampling the unsteered baseline of the search prompts")
    baseline = score_texts(model, sampling.samples(model, search_prompts, None), scorer)
    key = _settings_key(
        model, vector, scorer, chosen_layers, coefficient_range, angle_range, modes, prompts, held_out_fraction, sampling,
        max_perplexity_ratio, study_key,
    )  # fmt: skip
    searches = []
    held_out_baseline: tuple[list[Generation], TextScores] | None = None
    for index, direction in enumerate(directions):

        def tell_progress(done: int, message: str, index: int = index) -> None:
            report((index + done / n_trials) / len(directions), message)

        with _quiet_optuna():
            study = optuna.create_study(
                storage=_storage(storage_path),
                study_name=f"steering-search-{direction}-{key}",
                directions=["maximize", "minimize"],
                load_if_exists=True,
            )
            trials = _run_study(
                study, model, vector, scorer, direction, chosen_layers, modes, coefficient_range, angle_range,
                search_prompts, sampling, baseline, n_trials, max_perplexity_ratio, tell_progress,
            )  # fmt: skip
        chosen = choose(trials, max_perplexity_ratio, baseline.mean_distinct2)
        held_out = None
        if chosen is not None:
            if held_out_baseline is None:
                plain = held_out_sampling.samples(model, held_out_prompts, None)
                held_out_baseline = (plain, score_texts(model, plain, scorer))
            report((index + 1) / len(directions), f"{direction.capitalize()}: checking {chosen.describe()} on held-out prompts")
            held_out = _held_out_check(
                model, vector, scorer, chosen, direction, held_out_prompts, held_out_sampling, held_out_baseline[1]
            )
        searches.append(DirectionSearch(direction, study.study_name, trials, chosen, held_out))
    report(1.0, "Done")
    return SearchResult(
        tuple(searches),
        search_prompts,
        held_out_prompts,
        baseline,
        scorer.name,
        float(max_perplexity_ratio),
        time.perf_counter() - start,
    )


def _settings_key(
    model, vector, scorer, layers, coefficient_range, angle_range, modes, prompts, fraction, sampling, limit, extra
):
    """A digest of everything that changes the trials (not n_trials; the limit steers the sampler): equal settings,
    the same study."""
    from interp.serialise import dumps

    settings = (
        model.info.weights_sha256, vector, scorer.name, layers, tuple(map(float, coefficient_range)),
        tuple(map(float, angle_range)), tuple(modes), tuple(prompts), float(fraction), sampling, float(limit), extra,
        TRIAL_FORMAT,
    )  # fmt: skip
    text, blob = dumps(settings)
    return hashlib.sha256(text.encode() + b"\0" + blob).hexdigest()[:16]


def _run_study(
    study: optuna.Study,
    model: LoadedModel,
    vector: SteeringVector,
    scorer: Scorer,
    direction: str,
    layers: Sequence[int],
    modes: Sequence[str],
    coefficient_range: tuple[float, float],
    angle_range: tuple[float, float],
    prompts: tuple[str, ...],
    sampling: _Sampling,
    baseline: TextScores,
    n_trials: int,
    limit: float,
    report: Callable[[int, str], None],
) -> tuple[SearchTrial, ...]:
    """Ask and tell until the study has ``n_trials`` finished trials; the finished ones as plain values, front marked."""
    from optuna.trial import TrialState

    sign = 1.0 if direction == "raise" else -1.0
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    name = direction.capitalize()
    if done:
        report(min(done, n_trials), f"{name}: {done} finished trial(s) found in the journal")
    while done < n_trials:
        study.sampler = _sampler(sampling.seed, done)  # seeded by position, so resuming proposes the same settings
        trial = study.ask()
        try:
            layer, mode, magnitude = _suggest(trial, layers, modes, coefficient_range, angle_range)
            started = time.perf_counter()
            hooks = setting_hooks(model, vector, layer, mode, sign * magnitude, sampling.positions)
            samples = sampling.samples(model, prompts, hooks)
            steered = score_texts(model, samples, scorer)
            # KL on each prompt's first sample: teacher-forcing is most of a trial's time, one sample per prompt shows it
            kl = _kl(model, samples[:: sampling.n_samples], hooks)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)  # not left RUNNING in the journal; a resume tries it afresh
            raise
        gain, gain_se = paired_gain(steered, baseline, len(prompts), direction)
        trial.set_user_attr("behaviour", steered.mean_behaviour)
        trial.set_user_attr("gain_se", gain_se)
        trial.set_user_attr("kl", kl.mean)
        trial.set_user_attr("distinct2", steered.mean_distinct2)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        # The limits as constraints (feasible when ≤ 0): TPE then models the front inside them, where the choice is made
        trial.set_constraint("perplexity", _ratio(steered, baseline) - limit)
        trial.set_constraint("repetition", COLLAPSE_FRACTION * baseline.mean_distinct2 - steered.mean_distinct2)
        study.tell(trial, [gain if math.isfinite(gain) else -math.inf, _ratio(steered, baseline)])
        done += 1
        how = f"add {signed(sign * magnitude)}" if mode == "add" else f"rotate {signed(sign * magnitude)}°"
        report(done, f"{name}: trial {done} of {n_trials} (layer {layer}, {how}): gain {gain:+.3f}")
    finished = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    trials = [_frozen_trial(t, direction) for t in finished[:n_trials]]  # a larger study read with a smaller n_trials
    # the front of the trials within both limits, as Optuna's best_trials is for a constrained study
    feasible = [t for t in trials if _acceptable(t, limit, baseline.mean_distinct2)]
    front = pareto_numbers([(t.number, t.gain, t.perplexity_ratio) for t in feasible])
    return tuple(dataclasses.replace(t, on_front=t.number in front) for t in trials)


def _held_out_check(
    model: LoadedModel,
    vector: SteeringVector,
    scorer: Scorer,
    chosen: SearchTrial,
    direction: str,
    prompts: tuple[str, ...],
    sampling: _Sampling,
    unsteered: TextScores,
) -> HeldOutCheck:
    started = time.perf_counter()
    hooks = setting_hooks(model, vector, chosen.layer, chosen.mode, chosen.strength, sampling.positions)
    samples = sampling.samples(model, prompts, hooks)
    steered = score_texts(model, samples, scorer)
    evaluation = Evaluation(
        chosen.layer, chosen.strength, prompts, unsteered, steered, scorer.name, time.perf_counter() - started
    )
    return HeldOutCheck(
        evaluation=evaluation,
        gain=_toward(evaluation.behaviour_gain, direction),
        perplexity_ratio=_ratio(steered, unsteered),
        kl=_kl(model, samples, hooks),
        distinct2=steered.mean_distinct2,
        baseline_distinct2=unsteered.mean_distinct2,
        reliability=per_prompt_effects(evaluation, goal=direction),
    )


def _check_range(name: str, bounds: Sequence[float], *, low: float, high: float | None = None) -> tuple[float, float]:
    if len(bounds) != 2:
        raise InputError(f"The {name} range needs two numbers, (low, high); got {len(bounds)}.")
    first, second = (float(b) for b in bounds)
    for value in (first, second):
        check_finite(f"{name} range bound", value, low=low, high=high)
    if not first < second:
        raise InputError(f"The {name} range ({first:g}, {second:g}) must go from low to high; swap or widen it.")
    return first, second


@dataclasses.dataclass(frozen=True)
class SteeringSearch(RunSpec):
    """Multi-objective TPE over layer, mode and strength per direction, with the chosen point checked held out."""

    kind: ClassVar[str] = "steering_search"
    title: ClassVar[str] = "Steering search"
    mirrors = (search,)

    vector: SteeringVector
    layers: tuple[int, ...] = default_of(search, "layers")  # empty: all the vector's layers
    coefficient_range: tuple[float, float] = default_of(search, "coefficient_range")
    angle_range: tuple[float, float] = default_of(search, "angle_range")
    modes: tuple[SearchMode, ...] = default_of(search, "modes")
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None
    prompts: tuple[str, ...] = default_of(search, "prompts")
    held_out_fraction: float = default_of(search, "held_out_fraction")
    n_trials: int = default_of(search, "n_trials")
    directions: tuple[SearchDirection, ...] = default_of(search, "directions")
    max_perplexity_ratio: float = default_of(search, "max_perplexity_ratio")
    n_samples: int = default_of(search, "n_samples")
    held_out_samples: int = default_of(search, "held_out_samples")  # 0: twice n_samples
    max_new_tokens: int = default_of(search, "max_new_tokens")
    temperature: float = default_of(search, "temperature")
    positions: Positions = default_of(search, "positions")
    seed: int = default_of(search, "seed")
    storage_path: str | None = default_of(search, "storage_path")

    def __post_init__(self) -> None:
        layers = tuple(int(layer) for layer in (self.layers or self.vector.layers))
        check_vector_layers(self.vector, layers)
        modes = tuple(dict.fromkeys(self.modes))
        if isinstance(self.modes, str) or not modes:
            raise InputError(f"Choose the modes to search as a list, from {', '.join(SEARCH_MODES)}.")
        for mode in modes:
            check_choice("search mode", mode, SEARCH_MODES)
        if "angular" in modes:
            zero = [layer for layer in layers if float(self.vector.direction(layer).float().norm()) == 0.0]
            if zero:
                raise InputError(
                    f"The vector's direction is zero at layer(s) {zero}, so angular steering has nothing to turn toward "
                    "there; search only 'add', or leave those layers out."
                )
        directions = tuple(dict.fromkeys(self.directions))
        if isinstance(self.directions, str) or not directions:
            raise InputError(f"Choose the directions to search as a list, from {', '.join(SEARCH_DIRECTIONS)}.")
        for direction in directions:
            check_choice("direction", direction, SEARCH_DIRECTIONS)
        coefficients = _check_range("coefficient", self.coefficient_range, low=1e-6)
        angles = _check_range("angle (degrees)", self.angle_range, low=0.0, high=180.0)
        check_scorer(self.scorer, self.reward_model)
        prompts = check_prompts(self.prompts)
        split_prompts(prompts, self.held_out_fraction, self.seed)  # says now, not after the baseline, if it is too small
        check_count("number of trials", self.n_trials, high=MAX_TRIALS)
        check_finite("perplexity limit", self.max_perplexity_ratio, low=1.0)
        check_count("number of samples", self.n_samples, high=MAX_SAMPLES)
        check_count("number of held-out samples", self.held_out_samples, low=0, high=MAX_SAMPLES)  # 0: twice n_samples
        check_sampling(self.max_new_tokens, self.temperature)
        check_choice("positions", self.positions, POSITION_MODES)
        if self.storage_path is not None:
            folder = os.path.dirname(os.path.abspath(self.storage_path))
            if not isinstance(self.storage_path, str) or not self.storage_path or not os.path.isdir(folder):
                raise InputError(f"The search journal {self.storage_path!r} must be a file in an existing folder.")
        for name, value in {
            "layers": layers, "modes": modes, "directions": directions, "coefficient_range": coefficients,
            "angle_range": angles, "prompts": prompts, "held_out_fraction": float(self.held_out_fraction),
            "max_perplexity_ratio": float(self.max_perplexity_ratio), "temperature": float(self.temperature),
        }.items():  # fmt: skip
            object.__setattr__(self, name, value)  # one canonical form, so equal settings give equal digests

    def study_key(self) -> str:
        """What the core's settings do not show: the reward model (by digest) that scores the trials."""
        if self.reward_model is None:
            return ""
        from interp.serialise import dumps

        text, blob = dumps(self.reward_model)
        return hashlib.sha256(text.encode() + b"\0" + blob).hexdigest()[:16]

    def run(self, model: LoadedModel, progress: Progress | None = None) -> SearchResult:
        return search(
            model,
            self.vector,
            behaviour_scorer(model, self.scorer, self.reward_model),
            layers=self.layers,
            coefficient_range=self.coefficient_range,
            angle_range=self.angle_range,
            modes=self.modes,
            prompts=self.prompts,
            held_out_fraction=self.held_out_fraction,
            n_trials=self.n_trials,
            directions=self.directions,
            max_perplexity_ratio=self.max_perplexity_ratio,
            n_samples=self.n_samples,
            held_out_samples=self.held_out_samples,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            positions=self.positions,
            seed=self.seed,
            storage_path=self.storage_path,
            study_key=self.study_key(),
            progress=progress,
        )
