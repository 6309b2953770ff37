"""Conditional activation steering (CAST): steer only the prompts a condition selects.

After Lee et al. 2024, "Programming Refusal with Conditional Activation Steering" (IBM's ``activation-steering``).
A steering vector added to every prompt also changes the prompts it was never meant for. CAST adds a second
direction, the *condition*, read at one layer: a prompt whose hidden state points along it is "about" the topic
(food, a harmful request, legal advice...), and only those prompts are steered.

Here, simplified and exact enough to test:

* **Condition direction** — the unit mean difference, at ``blocks.{layer}.hook_resid_pre``, between the prompts the
  condition should fire on and those it should not, each prompt read as the mean of its resid_pre over its tokens:
  ``d̂ = (mean_on − mean_off) / ‖mean_on − mean_off‖``. (The paper takes a PCA direction of the contrast, and
  projects each token's hidden state before averaging; a mean difference over per-prompt means is the same idea
  with one less choice, and the same reading as :func:`steering.make.text_activations` with ``position="mean"``.)
* **Check** — a prompt's projection is the cosine between its mean resid_pre and ``d̂``; the condition fires when
  that projection is above a threshold (the paper's comparison is the same: a similarity against a threshold).
* **Threshold** — :func:`fit_threshold` tries every midpoint between neighbouring sorted projections of the labelled
  prompts and keeps the most accurate (the lowest such midpoint on a tie); :func:`condition_accuracy` says how often
  the check agrees with the labels, which is what to show next to the condition (on held-out prompts, ideally).
* **Steering** — the decision is made once per request, on its prompt, before it is submitted:
  :func:`conditional_additions` gives the vector's :class:`~interp.engine.RowAddition` list when the condition fires and
  ``()`` otherwise, and the engine applies a request's additions to that request's rows only, so in one batch the
  selected prompts are steered and the others run as if nothing were steered.

When to trust it: the threshold fitted on few prompts fits those prompts; report the accuracy on prompts it was not
fitted on. The condition reads the prompt only, never the generated text, as in the paper.

:data:`FOOD_PROMPTS` and :data:`OTHER_PROMPTS` are a small labelled example written for the project (cooking and
food, against other everyday topics).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import torch

from interp.activations import record
from interp.engine import RowAddition
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.tokens import as_batch, check_length, tokenize
from interp.validation import check_finite, check_texts
from steering.apply import steering_additions
from steering.vector import SteeringVector

# How messages name the two labelled sets: prompts the condition should fire on, and prompts it should not.
ON_NAME, OFF_NAME = "'on' prompts", "'off' prompts"

FOOD_PROMPTS = (
    "How long should I boil an egg so the yolk stays soft?",
    "What can I cook for dinner with rice, onions and a tin of tomatoes?",
    "Why does my bread come out of the oven dense and flat?",
    "Give me a simple recipe for pancakes without eggs.",
    "Which spices go well with roasted carrots?",
    "How do I keep fresh basil from wilting in the kitchen?",
    "Is it safe to eat leftover chicken curry after three days?",
    "What is the difference between baking soda and baking powder in a cake?",
    "Suggest a quick vegetarian lunch I can take to work.",
    "How do you make a creamy mushroom sauce for pasta?",
)
OTHER_PROMPTS = (
    "How do I change a flat tyre on a bicycle?",
    "What is the best way to learn a new language as an adult?",
    "Why is the sky blue during the day and red at sunset?",
    "Can you explain how a mortgage interest rate works?",
    "What should I pack for a weekend hiking trip in the mountains?",
    "How do I write a polite email asking for a deadline extension?",
    "Which houseplants survive in a room with little light?",
    "What are the rules of chess for moving the knight?",
    "How can I improve my sleep when I work night shifts?",
    "Tell me about the history of the printing press.",
)


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionDirection:
    """A unit direction ``[d_model]`` at ``blocks.{layer}.hook_resid_pre`` that separates two sets of prompts.

    Attributes:
        n_on, n_off: how many prompts each side was made from; model_name and d_model: what it was made for.
    """

    direction: torch.Tensor
    layer: int
    model_name: str
    d_model: int
    n_on: int
    n_off: int

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_pre"


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionCheck:
    """The condition: fires on a prompt whose mean resid_pre at ``layer`` has cosine > ``threshold`` with ``direction``."""

    direction: torch.Tensor  # [d_model]; only where it points matters (the projection is a cosine)
    layer: int
    threshold: float

    def __post_init__(self) -> None:
        if not isinstance(self.direction, torch.Tensor) or self.direction.ndim != 1:
            raise InputError("A condition's direction is one vector of d_model numbers.")
        if not bool(torch.isfinite(self.direction).all()) or float(self.direction.norm()) == 0.0:
            raise InputError("A condition's direction must be finite and non-zero.")
        check_finite("condition threshold", self.threshold, low=-1.0, high=1.0)  # a cosine
        object.__setattr__(self, "threshold", float(self.threshold))

    def projection(self, model: LoadedModel, prompt: str) -> float:
        """The cosine between ``prompt``'s mean resid_pre at :attr:`layer` and the condition direction."""
        return prompt_projections(model, self.direction, self.layer, [prompt])[0]

    def fires(self, model: LoadedModel, prompt: str) -> bool:
        """Whether the condition selects ``prompt`` (its projection is above the threshold)."""
        return self.projection(model, prompt) > self.threshold


def _check_layer(model: LoadedModel, layer: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.info.n_layers:
        raise InputError(f"Layer {layer!r} does not exist; {model.info.name} has layers 0..{model.info.n_layers - 1}.")
    return layer


def _check_direction(model: LoadedModel, direction: torch.Tensor) -> None:
    if direction.ndim != 1 or direction.shape[0] != model.info.d_model:
        raise InputError(
            f"The condition direction has shape {tuple(direction.shape)} but {model.info.name} has d_model = "
            f"{model.info.d_model}; it was made for another model."
        )


def _mean_resid_pre(model: LoadedModel, prompts: Sequence[str], layer: int, what: str) -> torch.Tensor:
    """``[len(prompts), d_model]``: each prompt's resid_pre at ``layer`` averaged over its tokens.

    Each prompt runs alone, tokenised as generation tokenises it (:func:`interp.tokens.tokenize`): no padding, so a
    prompt reads the same in a labelled set as in :meth:`ConditionCheck.projection`, and a request's prompt of any
    length the model reads can be checked (not only the short texts :mod:`steering.make` takes).
    """
    name = f"blocks.{layer}.hook_resid_pre"
    every = [tokenize(model, prompt) for prompt in prompts]  # every prompt checked before the model runs on any
    for i, ids in enumerate(every):
        check_length(model, len(ids), what=f"The {what} number {i + 1}")
    means = []
    for ids in every:
        acts = record(model, as_batch(ids, model), [name], logits_to_keep=1).activations[name]  # [1, pos, d_model]
        means.append(acts[0].float().mean(dim=0).cpu())
    return torch.stack(means)


def condition_direction(
    model: LoadedModel, on_prompts: Sequence[str], off_prompts: Sequence[str], *, layer: int
) -> ConditionDirection:
    """The unit mean difference (on − off) of the prompts' mean resid_pre at ``layer``.

    Example:
        >>> condition = condition_direction(model, FOOD_PROMPTS, OTHER_PROMPTS, layer=6)
        >>> check = fit_threshold(model, condition, FOOD_PROMPTS, OTHER_PROMPTS)
    """
    on_prompts = check_texts(ON_NAME, on_prompts)
    off_prompts = check_texts(OFF_NAME, off_prompts)
    layer = _check_layer(model, layer)
    on_mean = _mean_resid_pre(model, on_prompts, layer, "'on' prompt").mean(dim=0)  # [d_model]
    off_mean = _mean_resid_pre(model, off_prompts, layer, "'off' prompt").mean(dim=0)
    difference = on_mean - off_mean
    norm = float(difference.norm())
    if norm == 0.0:
        raise InputError(f"The two prompt sets read exactly the same at layer {layer}; give prompts that differ.")
    return ConditionDirection(
        direction=difference / norm,
        layer=layer,
        model_name=model.info.name,
        d_model=model.info.d_model,
        n_on=len(on_prompts),
        n_off=len(off_prompts),
    )


def prompt_projections(model: LoadedModel, direction: torch.Tensor, layer: int, prompts: Sequence[str]) -> list[float]:
    """The cosine of each prompt's mean resid_pre at ``layer`` with ``direction``."""
    prompts = check_texts("prompts", prompts)
    layer = _check_layer(model, layer)
    _check_direction(model, direction)
    means = _mean_resid_pre(model, prompts, layer, "prompt")  # [prompts, d_model]
    cosines = torch.nn.functional.cosine_similarity(means, direction.detach().float().cpu()[None, :], dim=-1)
    return [float(c) for c in cosines]


def threshold_accuracy(on_projections: Sequence[float], off_projections: Sequence[float], threshold: float) -> float:
    """The fraction of labelled projections the rule ``projection > threshold`` classifies correctly."""
    correct = sum(p > threshold for p in on_projections) + sum(p <= threshold for p in off_projections)
    return correct / (len(on_projections) + len(off_projections))


def best_threshold(on_projections: Sequence[float], off_projections: Sequence[float]) -> float:
    """The midpoint between neighbouring sorted projections with the best accuracy (the lowest one on a tie)."""
    if not on_projections or not off_projections:
        raise InputError("Fitting a threshold needs at least one 'on' and one 'off' projection.")
    values = sorted(set(on_projections) | set(off_projections))
    if len(values) < 2:
        raise InputError("Every labelled prompt projects the same onto the condition; give prompts that differ.")
    midpoints = [(low + high) / 2 for low, high in itertools.pairwise(values)]
    return max(midpoints, key=lambda t: (threshold_accuracy(on_projections, off_projections, t), -t))


def fit_threshold(
    model: LoadedModel, direction: ConditionDirection, on_prompts: Sequence[str], off_prompts: Sequence[str]
) -> ConditionCheck:
    """The check whose threshold classifies the labelled prompts best (see :func:`best_threshold`)."""
    on_prompts = check_texts(ON_NAME, on_prompts)
    off_prompts = check_texts(OFF_NAME, off_prompts)
    on = prompt_projections(model, direction.direction, direction.layer, on_prompts)
    off = prompt_projections(model, direction.direction, direction.layer, off_prompts)
    return ConditionCheck(direction.direction, direction.layer, best_threshold(on, off))


def condition_accuracy(check: ConditionCheck, model: LoadedModel, on_prompts: Sequence[str], off_prompts: Sequence[str]) -> float:
    """How often ``check`` fires on ``on_prompts`` and stays off on ``off_prompts`` (0..1)."""
    on_prompts = check_texts(ON_NAME, on_prompts)
    off_prompts = check_texts(OFF_NAME, off_prompts)
    on = prompt_projections(model, check.direction, check.layer, on_prompts)
    off = prompt_projections(model, check.direction, check.layer, off_prompts)
    return threshold_accuracy(on, off, check.threshold)


def conditional_additions(
    model: LoadedModel,
    check: ConditionCheck,
    prompt: str,
    vector: SteeringVector | Sequence[SteeringVector],
    coefficient: float | Sequence[float],
    *,
    layers: Sequence[int] | None = None,
    positions: str = "all",
) -> tuple[RowAddition, ...]:
    """The request's additions: :func:`~steering.apply.steering_additions` when ``check`` fires on ``prompt``, else ``()``.

    The additions are built (and so checked) either way, so a bad vector or coefficient fails on every prompt, not
    only on those the condition happens to select.
    """
    additions = steering_additions(model, vector, coefficient, layers=layers, positions=positions)
    return additions if check.fires(model, prompt) else ()
