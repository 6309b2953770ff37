"""One attribution: a method splits a target among the prompt's tokens, within a budget of model evaluations."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from interp.attribution.evaluation import Evaluator
from interp.attribution.methods import DEFAULT_METHOD, METHODS, AttributionMethod, method_of
from interp.attribution.targets import ResolvedTarget, Target, resolve_target
from interp.errors import InputError
from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.tokens import token_labels

DEFAULT_BUDGET = 5_000  # model evaluations (rows through the model) allowed for one run
DEFAULT_BATCH_SIZE = 32
# Integrated Gradients' scores should add up to f(x) - f(baseline) (completeness). Beyond this share of that
# change, the path integral has not converged and the scores are not to be trusted.
CONVERGENCE_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Per-token attribution of one target by one method.

    Attributes:
        method: The method's name (a key of :data:`METHODS`).
        scores: One number per prompt token, in the target's units (log-prob or logit).
        target_value: The target on the unchanged prompt, f(x).
        base_value: SHAP's expected value, or f(baseline) for Integrated Gradients; else None.
        convergence_delta: Integrated Gradients' completeness error (sum - (f(x) - f(baseline))).
        settings: The method's options, the baseline token and the seed.
        n_evaluations: Rows run through the model.
        seconds: Wall time of the run.
    """

    method: str
    prompt: str | tuple[int, ...]
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    scores: np.ndarray
    target: ResolvedTarget
    target_value: float
    base_value: float | None
    convergence_delta: float | None
    settings: dict[str, Any]
    n_evaluations: int
    seconds: float

    @property
    def title(self) -> str:
        return METHODS[self.method].title

    @property
    def relative_convergence_delta(self) -> float | None:
        """``|convergence delta| / |f(x) - f(baseline)|`` (Integrated Gradients only; else None)."""
        if self.convergence_delta is None or self.base_value is None:
            return None
        change = abs(self.target_value - self.base_value)
        return abs(self.convergence_delta) / change if change > 0 else float("inf")

    def convergence_warning(self) -> str | None:
        """What to tell a user whose Integrated Gradients scores do not add up (None when they do, or for other methods)."""
        relative = self.relative_convergence_delta
        if relative is None or relative <= CONVERGENCE_TOLERANCE:
            return None
        steps = self.settings.get("n_steps")
        return (
            f"{self.title}'s scores add up to {float(np.sum(self.scores)):+.3f}, but the target moved by "
            f"{self.target_value - self.base_value:+.3f} from the baseline (convergence delta "
            f"{self.convergence_delta:+.3f}, {100 * relative:.0f}% of the change; trusted below "
            f"{100 * CONVERGENCE_TOLERANCE:.0f}%). Do not read these scores yet: give it more steps "
            f"(now {steps}) or compare with SHAP or Shapley value sampling."
        )

    def top_tokens(self, k: int = 3) -> list[tuple[int, str, float]]:
        """The ``k`` tokens with the largest scores as ``(position, token, score)``."""
        order = np.argsort(-self.scores)[:k]
        return [(int(i), self.tokens[i], float(self.scores[i])) for i in order]


def estimate_evaluations(method: str | AttributionMethod, n_tokens: int, settings: dict[str, Any] | None = None) -> int:
    """Model evaluations (rows through the model) a run will cost at most, shown before it starts.

    ``settings`` may be a run's whole settings (:attr:`Attribution.settings`): keys that are not the
    method's options are ignored. Each count includes the one evaluation of the unchanged prompt.
    """
    cls = type(method) if isinstance(method, AttributionMethod) else METHODS.get(method)
    if cls is None:
        raise InputError(f"Unknown attribution method {method!r}; choose from {', '.join(METHODS)}.")
    names = {item.name for item in cls.options()}
    return method_of(method, {k: v for k, v in (settings or {}).items() if k in names}).evaluations(n_tokens)


def attribute(
    model: LoadedModel,
    prompt: str | Sequence[int],
    target: Target | None = None,
    method: str | AttributionMethod = DEFAULT_METHOD,
    *,
    budget: int = DEFAULT_BUDGET,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    **settings: Any,
) -> Attribution:
    """Attribute ``target`` on ``prompt`` to the prompt's tokens with one method.

    Args:
        target: What to explain; default the log-probability of the model's top next token.
        method: A method object (``ShapleySampling(n_samples=16)``) or the name of one in :data:`METHODS`;
            default SHAP with its default options.
        budget: Refuse (with the estimate) a run that would take more model evaluations.
        batch_size: Rows per forward pass.
        seed: For the sampling methods (SHAP's partition order is deterministic).
        settings: Method options by name, e.g. ``max_evals`` (shap), ``n_steps`` (integrated_gradients),
            ``n_samples`` (shapley_sampling); they override the method object's.

    Raises:
        InputError: unknown method or option, bad target, over-long prompt, or over budget.

    Example:
        >>> attribute(model, "When Mary and John went to the store, John gave a drink to",
        ...           Target.contrast(" Mary", " John"), "feature_ablation").top_tokens(2)
    """
    chosen = method_of(method, settings)
    resolved = resolve_target(model, prompt, target or Target.next_token())
    n = len(resolved.prompt_ids)
    estimate = chosen.evaluations(n)
    if estimate > budget:
        raise InputError(
            f"{chosen.title} on this {n}-token prompt would take about {estimate:,} model evaluations, "
            f"over the budget of {budget:,}. Lower its setting or raise the budget."
        )
    evaluator = Evaluator(model, resolved, batch_size)
    start = time.perf_counter()
    torch.manual_seed(seed)
    with intervene(model):
        computed = chosen.scores(evaluator)
        target_value = evaluator.unchanged()
    return Attribution(
        method=chosen.name,
        prompt=prompt if isinstance(prompt, str) else tuple(int(i) for i in prompt),
        tokens=tuple(token_labels(model, list(resolved.prompt_ids))),
        token_ids=resolved.prompt_ids,
        scores=np.asarray(computed.scores, dtype=np.float64),
        target=resolved,
        target_value=target_value,
        base_value=computed.base_value,
        convergence_delta=computed.convergence_delta,
        settings={**chosen.settings(), "baseline_token": model.tokenizer.decode([evaluator.pad_id]), "seed": seed},
        n_evaluations=evaluator.evaluations,
        seconds=time.perf_counter() - start,
    )
