"""The run kinds of the Steering page's modes beyond addition: pair consistency, conditional steering (CAST),
removing a direction (with the orthogonalised checkpoint), and rotating toward a direction.

Each spec holds everything its run needs and returns a frozen result of plain values, as :mod:`steering.runs` does,
so a page section builds the spec from its widgets, asks the run cache, and shows the result; "Keep this run" stores
the spec, and a replay runs it again. The techniques themselves live in :mod:`steering.reliability`,
:mod:`steering.conditional`, :mod:`steering.ablation`, :mod:`steering.angular` and :mod:`steering.kl`; this module only
composes them into one run each, with the same seeds on both sides of every comparison, so any difference between
the unsteered and the steered text comes from the intervention alone.

Example:
    >>> result = AngularSteering(vector.at_layers([4]), layer=4, angle_degrees=20.0).run(model)
    >>> result.kl, result.norm_before, result.norm_after
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from interp.engine import GenerationRequest, RowAddition, engine_for
from interp.errors import InputError
from interp.generation import Generation, SamplingSettings, generate_batch
from interp.hooks import HookFn, HookSite, current_activity, intervene
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_choice, check_count, check_finite, default_of
from interp.tokens import check_length, tokenize
from interp.validation import check_text, check_texts
from steering.ablation import ablation_hooks, refusal_direction, unit_direction
from steering.angular import ANGLE_MODES, angular_hooks
from steering.conditional import (
    FOOD_PROMPTS,
    OTHER_PROMPTS,
    ConditionCheck,
    best_threshold,
    condition_direction,
    conditional_additions,
    prompt_projections,
    threshold_accuracy,
)
from steering.datasets import ContrastPairs
from steering.kl import continuation_log_probs, mean_kl
from steering.reliability import PairConsistency, pair_consistency
from steering.runs import ScorerName, behaviour_scorer, check_scorer, check_vector_layers
from steering.scores import distinct_n
from steering.sweep import NEUTRAL_PROMPTS, TextScores, score_texts
from steering.vector import SteeringVector

if TYPE_CHECKING:
    from steering.rlhf import RewardModel

MAX_MODE_PROMPTS = 32  # labelled or test prompts per mode run: each is a forward pass (and a generation) of its own
MAX_MODE_TOKENS = 128  # new tokens per sample in a mode run (the page offers far fewer)
# Test prompts for the condition, written for the project and not among FOOD_PROMPTS/OTHER_PROMPTS, so the page shows
# the condition on prompts it was not fitted on: two about food, two not.
CONDITION_TEST_PROMPTS = (
    "What is a good way to cook salmon in the oven?",
    "How do I make a simple tomato soup?",
    "How do I fix a door that squeaks?",
    "What should I read to learn about the stars?",
)


def _prompts(name: str, prompts: Sequence[str]) -> tuple[str, ...]:
    return check_texts(name, prompts, max_items=MAX_MODE_PROMPTS)


def _check_sampling(max_new_tokens: int, temperature: float) -> None:
    check_count("number of new tokens", max_new_tokens, high=MAX_MODE_TOKENS)
    check_finite("temperature", temperature, low=0.0)


# ---------------------------------------------------------------------------------------------
# Reliability of the vector


@dataclasses.dataclass(frozen=True)
class PairConsistencyCheck(RunSpec):
    """The cosine of each training pair's difference to the vector's direction at one layer (:func:`pair_consistency`)."""

    kind: ClassVar[str] = "steering_pair_consistency"
    title: ClassVar[str] = "Pair consistency"
    mirrors = (pair_consistency,)

    pairs: ContrastPairs
    vector: SteeringVector  # at least ``layer`` (pages keep just that one)
    layer: int
    position: Literal["last", "mean"] = default_of(pair_consistency, "position")

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, [self.layer])
        check_choice("position", self.position, ("last", "mean"))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> PairConsistency:
        return pair_consistency(model, self.pairs, self.vector, self.layer, position=self.position)


def consistency_reading(consistency: PairConsistency) -> str:
    """One line on what the pairs' agreement predicts (Tan et al. 2024: consistent pairs steer reliably)."""
    if consistency.mean >= 0.5 and consistency.minimum > 0:
        return "the pairs agree with the vector: expect it to steer most prompts the same way."
    if consistency.mean >= 0.2:
        return "the pairs agree only partly: expect it to steer some prompts and not others; check the effect per prompt."
    return "the pairs disagree with their own mean: expect an unreliable vector; try other pairs, another layer or position."


# ---------------------------------------------------------------------------------------------
# Conditional steering (CAST)


@dataclasses.dataclass(frozen=True)
class ConditionalSample:
    """One test prompt: how far it reads along the condition, whether the condition fired, and its two texts."""

    prompt: str
    projection: float  # cosine of its mean resid_pre with the condition direction
    fires: bool
    unsteered: str
    conditional: str  # the text with conditional steering: steered when it fired, else decoded with no steering


@dataclasses.dataclass(frozen=True)
class ConditionalResult:
    """The fitted condition, its accuracy on the labelled prompts, and the test prompts' texts."""

    condition_layer: int
    threshold: float
    accuracy: float  # on the labelled prompts the threshold was fitted on (0..1)
    on_projections: tuple[float, ...]
    off_projections: tuple[float, ...]
    samples: tuple[ConditionalSample, ...]
    layer: int
    coefficient: float
    seconds: float

    @property
    def n_fired(self) -> int:
        return sum(sample.fires for sample in self.samples)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "prompt": [s.prompt for s in self.samples],
                "projection": [s.projection for s in self.samples],
                "fires": ["yes" if s.fires else "no" for s in self.samples],
                "unsteered": [s.unsteered for s in self.samples],
                "with the condition": [s.conditional for s in self.samples],
            }
        )


def decode_each(
    model: LoadedModel,
    prompts: Sequence[str],
    additions: Sequence[Sequence[RowAddition]],
    *,
    max_new_tokens: int = 30,
    temperature: float = 0.8,
    seed: int = 0,
    chat: bool = True,
) -> list[Generation]:
    """One sample per prompt, each its own engine request (prompt ``j`` seeded ``seed + j``) with its own additions."""
    settings = SamplingSettings(temperature)
    encoded = [tokenize(model, prompt, chat=chat) for prompt in prompts]
    for ids in encoded:
        check_length(model, len(ids) + max_new_tokens, what="A prompt plus the tokens to generate")
    engine = engine_for(model)
    streams = [
        engine.submit(
            GenerationRequest(
                prompt, tuple(ids), max_new_tokens=max_new_tokens, sampling=settings, seed=seed + j,
                additions=tuple(adds), label=current_activity() or "conditional steering",
            )
        )
        for j, (prompt, ids, adds) in enumerate(zip(prompts, encoded, additions, strict=True))
    ]  # fmt: skip
    try:
        return [stream.result()[0] for stream in streams]
    finally:
        for stream in streams:
            stream.cancel()  # an interrupted caller takes its rows out of the batch


@dataclasses.dataclass(frozen=True)
class ConditionalSteering(RunSpec):
    """Fit a condition on labelled prompts, then steer each test prompt only where the condition fires.

    The test prompts decode in one engine batch with the same seeds twice, once with no steering and once with each
    prompt's conditional additions (:func:`steering.conditional.conditional_additions`: the vector's where the
    condition fires, none elsewhere), so a prompt the condition skips decodes exactly as unsteered.
    """

    kind: ClassVar[str] = "conditional_steering"
    title: ClassVar[str] = "Conditional steering"
    mirrors = (decode_each,)

    vector: SteeringVector  # at least ``layer``
    layer: int
    coefficient: float
    condition_layer: int
    on_prompts: tuple[str, ...] = FOOD_PROMPTS
    off_prompts: tuple[str, ...] = OTHER_PROMPTS
    prompts: tuple[str, ...] = CONDITION_TEST_PROMPTS
    max_new_tokens: int = default_of(decode_each, "max_new_tokens")
    temperature: float = default_of(decode_each, "temperature")
    seed: int = default_of(decode_each, "seed")
    chat: bool = default_of(decode_each, "chat")  # answer in the chat template (the condition reads the prompt as typed)

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, [self.layer])
        check_finite("coefficient", self.coefficient)
        _check_sampling(self.max_new_tokens, self.temperature)
        object.__setattr__(self, "coefficient", float(self.coefficient))
        object.__setattr__(self, "on_prompts", _prompts("'on' prompts", self.on_prompts))
        object.__setattr__(self, "off_prompts", _prompts("'off' prompts", self.off_prompts))
        object.__setattr__(self, "prompts", _prompts("test prompts", self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> ConditionalResult:
        report = progress or (lambda fraction, message: None)
        start = time.perf_counter()
        report(0.0, f"Reading {len(self.on_prompts) + len(self.off_prompts)} labelled prompts at layer {self.condition_layer}")
        direction = condition_direction(model, self.on_prompts, self.off_prompts, layer=self.condition_layer)
        on = prompt_projections(model, direction.direction, self.condition_layer, self.on_prompts)
        off = prompt_projections(model, direction.direction, self.condition_layer, self.off_prompts)
        check = ConditionCheck(direction.direction, self.condition_layer, best_threshold(on, off))
        report(0.4, f"Checking and writing {len(self.prompts)} test prompts")
        projections = prompt_projections(model, check.direction, check.layer, self.prompts)
        additions = [
            conditional_additions(model, check, prompt, self.vector, self.coefficient, layers=[self.layer])
            for prompt in self.prompts
        ]
        options = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed, "chat": self.chat}
        plain = decode_each(model, self.prompts, [()] * len(self.prompts), **options)
        steered = decode_each(model, self.prompts, additions, **options)
        report(1.0, "Done")
        samples = tuple(
            ConditionalSample(prompt, float(projection), bool(adds), u.text, s.text)
            for prompt, projection, adds, u, s in zip(self.prompts, projections, additions, plain, steered, strict=True)
        )
        return ConditionalResult(
            condition_layer=self.condition_layer,
            threshold=check.threshold,
            accuracy=threshold_accuracy(on, off, check.threshold),
            on_projections=tuple(on),
            off_projections=tuple(off),
            samples=samples,
            layer=self.layer,
            coefficient=self.coefficient,
            seconds=time.perf_counter() - start,
        )


# ---------------------------------------------------------------------------------------------
# Removing a direction (directional ablation)

DirectionSource = Literal["refusal", "vector"]


@dataclasses.dataclass(frozen=True)
class AblationResult:
    """One instruction answered with and without the direction removed (same seed), and the damage."""

    direction: torch.Tensor  # [d_model], unit length, fp32 on CPU: what was removed
    layer: int
    source: str  # in words: where the direction came from
    separation: float  # refusal: the raw mean difference's length; vector: its norm at the layer
    instruction: str
    unablated: str
    ablated: str
    kl: float  # mean KL(unablated || ablated) over the ablated answer's positions, nats
    perplexity_unablated: float  # under the unablated model
    perplexity_ablated: float
    distinct2_unablated: float
    distinct2_ablated: float
    seconds: float


def answer_pair(
    model: LoadedModel, instruction: str, hooks, *, max_new_tokens: int = 40, temperature: float = 0.0, seed: int = 0
) -> tuple[Generation, Generation]:
    """The instruction answered in the chat template without and with ``hooks``, with the same seed (greedy by default)."""
    options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed, "chat": True}
    (plain,) = generate_batch(model, [instruction], **options)[0]
    (changed,) = generate_batch(model, [instruction], hooks=hooks, **options)[0]
    return plain, changed


@dataclasses.dataclass(frozen=True)
class DirectionAblation(RunSpec):
    """Remove one direction at every residual writer (:func:`steering.ablation.ablation_hooks`) while answering.

    ``source="refusal"``: the refusal direction (harmful minus harmless instructions at ``layer``);
    ``source="vector"``: the steering vector's direction at ``layer``. The instruction is wrapped in the chat template.
    """

    kind: ClassVar[str] = "direction_ablation"
    title: ClassVar[str] = "Removing a direction"
    mirrors = (refusal_direction, answer_pair)

    source: DirectionSource
    instruction: str
    layer: int
    harmful: tuple[str, ...] = default_of(refusal_direction, "harmful")
    harmless: tuple[str, ...] = default_of(refusal_direction, "harmless")
    vector: SteeringVector | None = None  # needed when source == "vector"
    max_new_tokens: int = default_of(answer_pair, "max_new_tokens")
    temperature: float = default_of(answer_pair, "temperature")
    seed: int = default_of(answer_pair, "seed")

    def __post_init__(self) -> None:
        check_choice("direction source", self.source, ("refusal", "vector"))
        check_text("instruction", self.instruction)
        _check_sampling(self.max_new_tokens, self.temperature)
        if self.source == "vector":
            if self.vector is None:
                raise InputError("Removing the vector's direction needs a vector: build one in section 1.")
            check_vector_layers(self.vector, [self.layer])
        object.__setattr__(self, "harmful", _prompts("harmful instructions", self.harmful))
        object.__setattr__(self, "harmless", _prompts("harmless instructions", self.harmless))

    def direction(self, model: LoadedModel) -> tuple[torch.Tensor, str, float]:
        """The unit direction to remove, where it came from (in words), and its separation (see :class:`AblationResult`)."""
        if self.source == "vector":
            assert self.vector is not None
            raw = self.vector.direction(self.layer)
            return unit_direction(model, raw), f"the vector's direction at layer {self.layer}", float(raw.float().norm())
        if not 0 <= self.layer < model.info.n_layers:
            raise InputError(f"Layer {self.layer} does not exist; {model.info.name} has layers 0..{model.info.n_layers - 1}.")
        found = refusal_direction(model, self.harmful, self.harmless, self.layer)
        where = f"the refusal direction at layer {self.layer} ({found.n_harmful} harmful − {found.n_harmless} harmless)"
        return found.direction, where, found.mean_difference_norm

    def run(self, model: LoadedModel, progress: Progress | None = None) -> AblationResult:
        report = progress or (lambda fraction, message: None)
        start = time.perf_counter()
        report(0.0, "Finding the direction")
        direction, source, separation = self.direction(model)
        hooks = ablation_hooks(model, direction)
        report(0.2, "Answering with and without the direction")
        plain, ablated = answer_pair(
            model, self.instruction, hooks, max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )
        report(0.8, "Measuring the damage (KL, perplexity)")
        kl = _kl_or_nan(model, ablated, hooks)
        return AblationResult(
            direction=direction,
            layer=self.layer,
            source=source,
            separation=separation,
            instruction=self.instruction,
            unablated=plain.text,
            ablated=ablated.text,
            kl=kl,
            perplexity_unablated=_perplexity(model, plain),
            perplexity_ablated=_perplexity(model, ablated),
            distinct2_unablated=float(distinct_n([plain.text])[0]),
            distinct2_ablated=float(distinct_n([ablated.text])[0]),
            seconds=time.perf_counter() - start,
        )


def _kl_or_nan(model: LoadedModel, generation: Generation, hooks) -> float:
    if not generation.token_ids:
        return math.nan  # nothing was written, so no prediction to compare
    return mean_kl(model, [generation.prompt_token_ids], [generation.token_ids], hooks).mean


def _perplexity(model: LoadedModel, generation: Generation) -> float:
    """The unsteered model's perplexity of a continuation after its own prompt tokens (chat-formatted ones included)."""
    if not generation.token_ids:
        return math.nan
    log_probs = continuation_log_probs(model, generation.prompt_token_ids, generation.token_ids)  # [n, d_vocab]
    chosen = log_probs[torch.arange(len(generation.token_ids)), torch.tensor(generation.token_ids)]
    return float(torch.exp(-chosen.mean()))


@dataclasses.dataclass(frozen=True)
class OrthogonalisedArchive:
    """A zip of the checkpoint with the direction baked into the weights, and how closely it matches the hooks.

    Attributes:
        zip_path: The archive on the server's disk (the page streams it to the browser on download).
        hooks_vs_weights: Per prompt position, max |logit difference| between the hooked model and the saved one.
        original_vs_ablated: Per position, max |logit difference| between the model and its ablation (the effect the
            parity is small against).
    """

    zip_path: str
    size_bytes: int
    files: tuple[str, ...]
    changed: int  # how many tensors were orthogonalised
    untied: bool
    tokens: tuple[str, ...]
    hooks_vs_weights: tuple[float, ...]
    original_vs_ablated: tuple[float, ...]
    seconds: float

    @property
    def max_difference(self) -> float:
        return max(self.hooks_vs_weights)


@dataclasses.dataclass(frozen=True)
class OrthogonalisedExport(RunSpec):
    """Save the model with ``direction`` orthogonalised out of its weights, check it against the hooks, and zip it."""

    kind: ClassVar[str] = "orthogonalised_export"
    title: ClassVar[str] = "Orthogonalised checkpoint"

    direction: torch.Tensor  # [d_model]
    prompt: str  # where the parity is measured

    def __post_init__(self) -> None:
        check_text("prompt", self.prompt)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> OrthogonalisedArchive:
        from interp import load_model
        from steering.ablation import save_orthogonalised

        report = progress or (lambda fraction, message: None)
        start = time.perf_counter()
        ids = tokenize(model, self.prompt)
        check_length(model, len(ids), what="The parity prompt")
        work = Path(tempfile.mkdtemp(prefix="steerscope-orthogonalised-"))
        try:
            report(0.05, "Orthogonalising the weights and writing the checkpoint")
            saved = save_orthogonalised(model, self.direction, work / "orthogonalised")
            report(0.45, "Loading the checkpoint back to compare its logits with the hooks")
            tokens = torch.tensor([ids], dtype=torch.long)
            original = _logits(model, tokens, None)
            hooked = _logits(model, tokens, ablation_hooks(model, self.direction))
            loaded = load_model(saved.folder, device=str(model.device))
            baked = _logits(loaded, tokens, None)
            del loaded
            report(0.75, "Zipping the checkpoint")
            archive = work / "orthogonalised.zip"
            files = sorted(p.name for p in saved.folder.iterdir())
            # stored, not deflated: safetensors barely compress, and a 600 MB deflate would take a minute of CPU
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
                for name in files:
                    zf.write(saved.folder / name, arcname=f"orthogonalised/{name}")
            shutil.rmtree(saved.folder, ignore_errors=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        report(1.0, "Done")
        result = OrthogonalisedArchive(
            zip_path=str(archive),
            size_bytes=archive.stat().st_size,
            files=tuple(files),
            changed=len(saved.changed),
            untied=saved.untied,
            tokens=tuple(model.tokenizer.decode([i]) for i in ids),
            hooks_vs_weights=tuple((hooked - baked).abs().amax(dim=-1).tolist()),
            original_vs_ablated=tuple((original - hooked).abs().amax(dim=-1).tolist()),
            seconds=time.perf_counter() - start,
        )
        # the zip (hundreds of MB for a real model) lives as long as its result: once no cache or page holds it, it goes
        weakref.finalize(result, shutil.rmtree, work, True)
        return result


def _logits(model: LoadedModel, tokens: torch.Tensor, hooks) -> torch.Tensor:
    """``[pos, d_vocab]`` fp64 logits of one tokenised prompt, with ``hooks``."""
    with intervene(model, hooks), torch.inference_mode():
        return model.bridge(tokens.to(model.device))[0].double().cpu()


# ---------------------------------------------------------------------------------------------
# Rotating toward a direction (angular steering)


@dataclasses.dataclass(frozen=True)
class AngularResult:
    """Unsteered and rotated samples of the same prompts (same seeds), scored, with the norms the hook saw.

    Attributes:
        kl: Mean KL(unsteered || rotated) over the rotated samples' generated positions, nats.
        norm_before, norm_after: Mean ‖activation‖ at the hook point, over every position the hook rotated while the
            rotated texts were read back (prompt and continuation), before and after the rotation.
        max_norm_change: The largest | ‖x'‖ − ‖x‖ | / ‖x‖ over those positions (0 up to float rounding).
    """

    layer: int
    angle_degrees: float
    mode: str
    prompts: tuple[str, ...]
    unsteered: TextScores
    steered: TextScores
    scorer: str
    kl: float
    norm_before: float
    norm_after: float
    max_norm_change: float
    seconds: float

    @property
    def behaviour_gain(self) -> float:
        return self.steered.mean_behaviour - self.unsteered.mean_behaviour

    @property
    def perplexity_ratio(self) -> float:
        return self.steered.mean_perplexity / self.unsteered.mean_perplexity


class NormMeter:
    """Wraps hooks to record ‖x‖ before and ‖x'‖ after each one, per position (a measurement, not an assumption)."""

    def __init__(self) -> None:
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []

    def wrap(self, hooks: Sequence[tuple[str, HookFn]]) -> list[tuple[str, HookFn]]:
        return [(name, self._measured(fn)) for name, fn in hooks]

    def _measured(self, fn: HookFn) -> HookFn:
        def measured(activation: torch.Tensor, site: HookSite) -> torch.Tensor | None:
            out = fn(activation, site)
            if out is not None:
                self.before.append(activation.detach().float().norm(dim=-1).flatten().cpu())
                self.after.append(out.detach().float().norm(dim=-1).flatten().cpu())
            return out

        return measured


@dataclasses.dataclass(frozen=True)
class AngularSteering(RunSpec):
    """Rotate each activation at ``layer`` toward the vector's direction by ``angle_degrees``, keeping its norm."""

    kind: ClassVar[str] = "angular_steering"
    title: ClassVar[str] = "Angular steering"
    mirrors = (angular_hooks,)

    vector: SteeringVector  # at least ``layer``; only its direction counts
    layer: int
    angle_degrees: float
    mode: Literal["toward", "absolute"] = default_of(angular_hooks, "mode")
    scorer: ScorerName = "sentiment"
    reward_model: RewardModel | None = None
    prompts: tuple[str, ...] = NEUTRAL_PROMPTS[:1]
    n_samples: int = 2
    max_new_tokens: int = 30
    temperature: float = 0.8
    seed: int = 0
    positions: Literal["all", "prompt", "generated"] = default_of(angular_hooks, "positions")

    def __post_init__(self) -> None:
        check_vector_layers(self.vector, [self.layer])
        check_choice("angle mode", self.mode, ANGLE_MODES)
        check_finite("angle (degrees)", self.angle_degrees, low=-180.0 if self.mode == "toward" else 0.0, high=180.0)
        check_scorer(self.scorer, self.reward_model)
        check_count("number of samples", self.n_samples, high=8)
        _check_sampling(self.max_new_tokens, self.temperature)
        object.__setattr__(self, "angle_degrees", float(self.angle_degrees))
        object.__setattr__(self, "prompts", _prompts("prompts", self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> AngularResult:
        report = progress or (lambda fraction, message: None)
        start = time.perf_counter()
        scorer = behaviour_scorer(model, self.scorer, self.reward_model)
        hooks = angular_hooks(
            model, self.vector, self.angle_degrees, layers=[self.layer], positions=self.positions, mode=self.mode
        )
        options = {"max_new_tokens": self.max_new_tokens, "n_samples": self.n_samples, "temperature": self.temperature}
        report(0.0, "Unsteered samples")
        prompts = list(self.prompts)
        plain = [g for group in generate_batch(model, prompts, seed=self.seed, **options) for g in group]
        report(0.3, f"Rotated samples ({self.angle_degrees:+g}°)")
        rotated = [g for group in generate_batch(model, prompts, seed=self.seed, hooks=hooks, **options) for g in group]
        report(0.6, "Scoring, and measuring KL and the norms")
        meter = NormMeter()
        written = [g for g in rotated if g.token_ids]
        kl = math.nan
        if written:
            kl = mean_kl(model, [g.prompt_token_ids for g in written], [g.token_ids for g in written], meter.wrap(hooks)).mean
        before = torch.cat(meter.before) if meter.before else torch.zeros(0)
        after = torch.cat(meter.after) if meter.after else torch.zeros(0)
        change = ((after - before).abs() / before.clamp_min(1e-12)).max().item() if len(before) else math.nan
        return AngularResult(
            layer=self.layer,
            angle_degrees=self.angle_degrees,
            mode=self.mode,
            prompts=self.prompts,
            unsteered=score_texts(model, plain, scorer),
            steered=score_texts(model, rotated, scorer),
            scorer=scorer.name,
            kl=kl,
            norm_before=float(before.mean()) if len(before) else math.nan,
            norm_after=float(after.mean()) if len(after) else math.nan,
            max_norm_change=change,
            seconds=time.perf_counter() - start,
        )
