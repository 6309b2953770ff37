"""Which input tokens made the model say this? Token attributions with SHAP and Captum.

A *target* is a number computed from the model's output for a prompt — the log-probability of the
next token (by default the model's top prediction), the summed log-probability of a multi-token
continuation, or the logit difference between two candidate tokens. An attribution method splits
that number among the prompt's tokens:

* **SHAP (Partition)** — Owen values over a hierarchy of token groups, from ``shap``'s Partition
  explainer with a text masker on the model's tokenizer. Satisfies local accuracy: the base value
  plus the token values equals the target exactly.
* **Integrated Gradients** — Captum's ``LayerIntegratedGradients`` on the embedding layer: gradients
  averaged along a straight path from a baseline (every token replaced by the baseline token) to
  the input. Completeness: the attributions sum to ``f(x) - f(baseline)`` up to the *convergence
  delta*, which shrinks with more steps; a large delta means the numbers are not yet trustworthy.
* **Feature ablation (occlusion)** — Captum: replace one token at a time by the baseline token and
  record the drop. Cheap and easy to read; blind to tokens that matter only together.
* **Shapley value sampling** — Captum: average marginal contribution over random token orderings.
  Unbiased Shapley estimates; cost grows with the number of samples.
* **Gradient × input** — Captum's ``LayerGradientXActivation`` on the embeddings: one backward
  pass. Fast, local, and often unfaithful; the faithfulness check shows when.

Every method "removes" a token the same way: it becomes the baseline token (the tokenizer's pad
token, else its unknown or end token). SHAP's text masker is given that token's text, so it masks
with the same token.

Faithfulness (DeYoung et al. 2020): delete the most important tokens first and watch the target
fall (comprehensiveness: the mean drop, higher is better); keep only the most important tokens
and watch the target recover (sufficiency: the mean remaining gap, lower is better). Compare
methods on *your* prompt by these numbers, not by how plausible the heatmaps look.

All model evaluations are batched, and every run holds the model's lock through
:func:`interp.hooks.intervene` (Captum's gradient methods hook the embedding module, and those
hooks must be invisible to other sessions and gone afterwards).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, check_length, pad_rows, single_token_id, token_labels, tokenize

METHODS = ("shap", "integrated_gradients", "feature_ablation", "shapley_sampling", "gradient_x_input")
METHOD_TITLES = {
    "shap": "SHAP (Partition)",
    "integrated_gradients": "Integrated Gradients",
    "feature_ablation": "Feature ablation",
    "shapley_sampling": "Shapley value sampling",
    "gradient_x_input": "Gradient × input",
}
DEFAULT_SETTINGS: dict[str, dict[str, int]] = {
    "shap": {"max_evals": 300},
    "integrated_gradients": {"n_steps": 64},
    "feature_ablation": {},
    "shapley_sampling": {"n_samples": 8},
    "gradient_x_input": {},
}
DEFAULT_BUDGET = 5_000  # model evaluations (rows through the model) allowed for one run
DEFAULT_BATCH_SIZE = 32


# ---------------------------------------------------------------------------------------------
# Targets


@dataclasses.dataclass(frozen=True)
class Target:
    """What to explain. Build with :meth:`next_token`, :meth:`continuation` or :meth:`contrast`."""

    kind: str  # "next_token" | "continuation" | "contrast" | "scalar"
    token: str | None = None
    text: str | None = None
    other: str | None = None
    function: Callable[[torch.Tensor], torch.Tensor] | None = None  # "scalar": token ids [rows, pos] -> [rows]
    label: str | None = None

    @classmethod
    def next_token(cls, token: str | None = None) -> Target:
        """Log-probability of ``token`` as the next token (None: the model's top prediction)."""
        return cls("next_token", token=token)

    @classmethod
    def continuation(cls, text: str) -> Target:
        """Summed log-probability of a (multi-token) continuation of the prompt."""
        if not text:
            raise InputError("The continuation is empty; type the text the model should continue with.")
        return cls("continuation", text=text)

    @classmethod
    def contrast(cls, token: str, other: str) -> Target:
        """Logit of ``token`` minus logit of ``other`` at the next position (e.g. ' Mary' vs ' John')."""
        return cls("contrast", token=token, other=other)

    @classmethod
    def scalar(cls, function: Callable[[torch.Tensor], torch.Tensor], label: str) -> Target:
        """Any differentiable number computed from equal-length token rows, such as a reward model's score.

        ``function(token_ids)`` gets ``[rows, pos]`` ids (the prompt with some tokens replaced) and
        returns ``[rows]``. It must run the model through :func:`interp.hooks.intervene`.
        """
        return cls("scalar", function=function, label=label)

    def describe(self) -> str:
        if self.kind == "scalar":
            return self.label or "scalar target"
        if self.kind == "continuation":
            return f"log P(continuation {self.text!r})"
        if self.kind == "contrast":
            return f"logit({self.token!r}) - logit({self.other!r})"
        return f"log P(next = {self.token!r})" if self.token is not None else "log P(top next token)"


@dataclasses.dataclass(frozen=True)
class ResolvedTarget:
    """A target bound to token ids for one prompt (so re-evaluations track the same token)."""

    label: str
    prompt_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]  # continuation tokens appended after the prompt (never attributed)
    token_id: int | None
    other_id: int | None
    kind: str
    function: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def positions_needed(self) -> int:
        """Trailing positions whose logits the target reads: the prompt's last, plus the continuation's."""
        return len(self.suffix_ids) + 1

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """Target value per row from the last :attr:`positions_needed` positions' logits ``[rows, k, vocab]``."""
        if self.kind == "continuation":
            total = torch.zeros(logits.shape[0], device=logits.device)
            for j, token in enumerate(self.suffix_ids):
                total = total + torch.log_softmax(logits[:, j].float(), dim=-1)[:, token]
            return total
        final = logits[:, 0].float()
        if self.kind == "contrast":
            return final[:, self.token_id] - final[:, self.other_id]
        return torch.log_softmax(final, dim=-1)[:, self.token_id]


def _resolve(model: LoadedModel, prompt: str | Sequence[int], target: Target) -> ResolvedTarget:
    prompt_ids = tokenize(model, prompt)
    if target.kind == "scalar":
        check_length(model, len(prompt_ids))
        return ResolvedTarget(target.describe(), tuple(prompt_ids), (), None, None, "scalar", target.function)
    if target.kind == "continuation":
        suffix = model.tokenizer(target.text, add_special_tokens=False).input_ids
        if not suffix:
            raise InputError("The continuation has no tokens; type the text the model should continue with.")
        check_length(model, len(prompt_ids) + len(suffix), what="The prompt plus the continuation")
        return ResolvedTarget(f"log P({target.text!r})", tuple(prompt_ids), tuple(suffix), None, None, "continuation")
    check_length(model, len(prompt_ids))
    if target.kind == "contrast":
        a, b = single_token_id(model, target.token or ""), single_token_id(model, target.other or "")
        return ResolvedTarget(target.describe(), tuple(prompt_ids), (), a, b, "contrast")
    if target.token is None:
        with intervene(model), torch.inference_mode():
            logits = model.bridge(torch.tensor([prompt_ids], device=model.device))
        token_id = int(logits[0, -1].argmax())
        label = f"log P(next = {model.tokenizer.decode([token_id])!r}) (top prediction)"
        return ResolvedTarget(label, tuple(prompt_ids), (), token_id, None, "next_token")
    token_id = single_token_id(model, target.token)
    return ResolvedTarget(target.describe(), tuple(prompt_ids), (), token_id, None, "next_token")


# ---------------------------------------------------------------------------------------------
# Batched evaluation


class _Evaluator:
    """Runs rows of token ids through the model in batches and counts the evaluations.

    Two savings keep attribution close to plain batched-forward throughput: the unembedding is
    applied only at the positions the target reads (``logits_to_keep``; it is a fifth of
    SmolLM2's compute per position), and the target's value on the unchanged prompt is remembered
    from whichever method call evaluates it, instead of being run again.
    """

    def __init__(self, model: LoadedModel, resolved: ResolvedTarget, batch_size: int) -> None:
        self.model = model
        self.resolved = resolved
        self.batch_size = batch_size
        self.evaluations = 0
        self.pad_id = baseline_token_id(model)
        self.unchanged_value: float | None = None

    def _remember(self, rows: Sequence[Sequence[int]], values: torch.Tensor) -> None:
        if self.unchanged_value is None:
            for row, value in zip(rows, values, strict=True):
                if tuple(row) == self.resolved.prompt_ids:
                    self.unchanged_value = float(value)
                    return

    def equal_length(self, input_ids: torch.Tensor, *, remember: bool = True) -> torch.Tensor:
        """Target per row for prompt rows of equal length (Captum's calling convention).

        Differentiable: gradient methods call it with grad enabled. ``remember=False`` when the ids
        are not what the model reads (their embeddings are replaced), so no row counts as the prompt.
        """
        rows = input_ids.shape[0]
        suffix = torch.tensor(self.resolved.suffix_ids, dtype=torch.long, device=input_ids.device)
        full = torch.cat([input_ids, suffix.expand(rows, -1)], dim=1) if len(suffix) else input_ids
        self.evaluations += rows
        if self.resolved.function is not None:
            values = self.resolved.function(full.to(self.model.device))
        else:
            logits = self.model.bridge(full.to(self.model.device), logits_to_keep=self.resolved.positions_needed)
            values = self.resolved.score(logits)
        if remember:
            self._remember(input_ids.tolist(), values.detach())
        return values

    def token_embeddings(self, ids: Sequence[int]) -> torch.Tensor:
        """The embedding layer's output for ``ids``: ``[1, len(ids), d_model]`` (constants for Captum)."""
        with torch.no_grad():
            return self.model.bridge.embed(torch.tensor([list(ids)], device=self.model.device)).detach()

    def from_token_embeddings(self, token_embeddings: torch.Tensor) -> torch.Tensor:
        """Target per row when the prompt's token embeddings ``[rows, n, d_model]`` are given.

        Captum's gradient methods perturb embeddings, not ids. They enter the model through the one hook
        context (the embedding layer's output is replaced at the prompt's positions), so no library
        registers hooks of its own on the shared model.
        """
        rows, n = token_embeddings.shape[:2]

        def replace(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
            return torch.cat([token_embeddings.to(activation.dtype), activation[:, n:]], dim=1)

        ids = torch.tensor([list(self.resolved.prompt_ids)], dtype=torch.long).expand(rows, -1)
        with intervene(self.model, {"hook_embed": replace}):
            return self.equal_length(ids, remember=False)

    def rows(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Target per row for prompts of any lengths: left-padded batches with a mask, no gradients."""
        values = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            if self.resolved.function is not None:  # scalar targets see equal-length rows only
                with torch.inference_mode():
                    scored = (
                        self.resolved.function(torch.tensor([list(p) for p in chunk], device=self.model.device)).float().cpu()
                    )
                self._remember(chunk, scored)
                values.append(scored.numpy())
                self.evaluations += len(chunk)
                continue
            full = [list(p) + list(self.resolved.suffix_ids) for p in chunk]
            # Left padding puts every row's last tokens in the same columns, so one
            # logits_to_keep serves the whole batch; the bridge derives positions from the mask.
            padded = pad_rows(full, self.pad_id, side="left")
            batch, mask = padded.tokens, padded.mask
            with torch.inference_mode():
                logits = self.model.bridge(
                    batch.to(self.model.device),
                    attention_mask=mask.to(self.model.device) if bool((mask == 0).any()) else None,
                    logits_to_keep=self.resolved.positions_needed,
                )
                scored = self.resolved.score(logits).cpu()
            self._remember(chunk, scored)
            values.append(scored.numpy())
            self.evaluations += len(chunk)
        return np.concatenate(values).astype(np.float64)

    def unchanged(self) -> float:
        """The target on the unchanged prompt (evaluated only if no method call has already)."""
        if self.unchanged_value is None:
            self.rows([self.resolved.prompt_ids])
        assert self.unchanged_value is not None
        return self.unchanged_value


# ---------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class Attribution:
    """Per-token attribution of one target by one method.

    Attributes:
        scores: One number per prompt token, in the target's units (log-prob or logit).
        target_value: The target on the unchanged prompt, f(x).
        base_value: SHAP's expected value, or f(baseline) for Integrated Gradients; else None.
        convergence_delta: Integrated Gradients' completeness error (sum - (f(x) - f(baseline))).
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
        return METHOD_TITLES[self.method]

    def top_tokens(self, k: int = 3) -> list[tuple[int, str, float]]:
        """The ``k`` tokens with the largest scores as ``(position, token, score)``."""
        order = np.argsort(-self.scores)[:k]
        return [(int(i), self.tokens[i], float(self.scores[i])) for i in order]


def estimate_evaluations(method: str, n_tokens: int, settings: dict[str, Any] | None = None) -> int:
    """Model evaluations (rows through the model) a run will cost at most, shown before it starts.

    Each count includes the one extra evaluation of the unchanged prompt that every run makes.
    """
    options = {**DEFAULT_SETTINGS.get(method, {}), **(settings or {})}
    if method == "shap":
        return int(options["max_evals"]) + 1
    if method == "integrated_gradients":
        return int(options["n_steps"]) + 6  # layer activations (2), the path, the delta (2), f(baseline), ours
    if method == "feature_ablation":
        return n_tokens + 2
    if method == "shapley_sampling":
        return int(options["n_samples"]) * n_tokens + 2
    if method == "gradient_x_input":
        return 2
    raise InputError(f"Unknown attribution method {method!r}; choose from {', '.join(METHODS)}.")


def attribute(
    model: LoadedModel,
    prompt: str | Sequence[int],
    target: Target | None = None,
    method: str = "shap",
    *,
    budget: int = DEFAULT_BUDGET,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    **settings: Any,
) -> Attribution:
    """Attribute ``target`` on ``prompt`` to the prompt's tokens with one method.

    Args:
        target: What to explain; default the log-probability of the model's top next token.
        method: One of :data:`METHODS`.
        budget: Refuse (with the estimate) a run that would take more model evaluations.
        batch_size: Rows per forward pass.
        seed: For the sampling methods (SHAP's partition order is deterministic).
        settings: Method options: ``max_evals`` (shap), ``n_steps`` (integrated_gradients),
            ``n_samples`` (shapley_sampling).

    Raises:
        InputError: unknown method, bad target, over-long prompt, or over budget.
    """
    if method not in METHODS:
        raise InputError(f"Unknown attribution method {method!r}; choose from {', '.join(METHODS)}.")
    target = target or Target.next_token()
    options = {**DEFAULT_SETTINGS[method], **{k: v for k, v in settings.items() if v is not None}}
    resolved = _resolve(model, prompt, target)
    n = len(resolved.prompt_ids)
    estimate = estimate_evaluations(method, n, options)
    if estimate > budget:
        raise InputError(
            f"{METHOD_TITLES[method]} on this {n}-token prompt would take about {estimate:,} model evaluations, "
            f"over the budget of {budget:,}. Lower its setting or raise the budget."
        )
    evaluator = _Evaluator(model, resolved, batch_size)
    start = time.perf_counter()
    torch.manual_seed(seed)
    with intervene(model):
        scores, base, delta = _RUNNERS[method](model, resolved, evaluator, options)
        target_value = evaluator.unchanged()
    return Attribution(
        method=method,
        prompt=prompt if isinstance(prompt, str) else tuple(int(i) for i in prompt),
        tokens=tuple(token_labels(model, list(resolved.prompt_ids))),
        token_ids=resolved.prompt_ids,
        scores=np.asarray(scores, dtype=np.float64),
        target=resolved,
        target_value=target_value,
        base_value=base,
        convergence_delta=delta,
        settings={**options, "baseline_token": model.tokenizer.decode([evaluator.pad_id]), "seed": seed},
        n_evaluations=evaluator.evaluations,
        seconds=time.perf_counter() - start,
    )


Runner = Callable[[LoadedModel, ResolvedTarget, _Evaluator, dict[str, Any]], tuple[np.ndarray, float | None, float | None]]


def _run_shap(model: LoadedModel, resolved: ResolvedTarget, evaluator: _Evaluator, options: dict[str, Any]):
    import shap

    if resolved.function is not None:
        raise InputError("SHAP masks text, which changes the token count; explain this target with a Captum method.")

    tokenizer = model.tokenizer
    # SHAP's text masker splits the prompt with the model's own tokenizer (its partition tree follows the
    # text) but hands us token ids, each masked token replaced by the baseline token: SHAP removes tokens
    # exactly as the Captum methods do, and masked rows keep the prompt's length. (Masking as *text* turned
    # each masked token into " " + mask, two tokens: rows grew up to 2x and were not the same perturbation.)
    masker = shap.maskers.Text(tokenizer, mask_token=evaluator.pad_id, collapse_mask_token=False, output_type="token_ids")
    prompt_text = tokenizer.decode(list(resolved.prompt_ids))
    if tokenize_plain(model, prompt_text) != list(resolved.prompt_ids):
        raise InputError(
            "SHAP masks text, and this prompt's tokens do not survive decoding and re-tokenising. "
            "Give the prompt as text, or use a Captum method."
        )

    end = len(resolved.prompt_ids) + masker.keep_prefix

    def predict(masked_ids: Any) -> np.ndarray:
        # The tokenizer's own special tokens (if it adds any) sit outside the prompt: keep the prompt's part.
        return evaluator.rows([[int(i) for i in row[masker.keep_prefix : end]] for row in masked_ids])

    explainer = shap.explainers.Partition(predict, masker)
    explanation = explainer([prompt_text], max_evals=int(options["max_evals"]), batch_size=evaluator.batch_size, silent=True)
    values = np.asarray(explanation.values[0], dtype=np.float64)
    if values.shape[0] != len(resolved.prompt_ids):
        raise InputError(
            f"SHAP split the prompt into {values.shape[0]} pieces but the model reads {len(resolved.prompt_ids)} tokens; "
            "this tokenizer's offsets do not line up with its tokens. Use another method for this model."
        )
    return values, float(np.asarray(explanation.base_values).ravel()[0]), None


def tokenize_plain(model: LoadedModel, text: str) -> list[int]:
    ids = tokenize(model, text) if text else []
    return ids or [baseline_token_id(model)]


def _prompt_tensor(resolved: ResolvedTarget, model: LoadedModel) -> torch.Tensor:
    return torch.tensor([resolved.prompt_ids], dtype=torch.long, device=model.device)


def _run_integrated_gradients(model: LoadedModel, resolved: ResolvedTarget, evaluator: _Evaluator, options: dict[str, Any]):
    from captum.attr import IntegratedGradients

    # From the baseline tokens' embeddings to the prompt's: the same path LayerIntegratedGradients on the
    # embedding layer takes, without a hook of Captum's on the shared model.
    inputs = evaluator.token_embeddings(resolved.prompt_ids)
    baselines = evaluator.token_embeddings([evaluator.pad_id] * len(resolved.prompt_ids))
    with torch.enable_grad():
        attributions, delta = IntegratedGradients(evaluator.from_token_embeddings).attribute(
            inputs,
            baselines=baselines,
            n_steps=int(options["n_steps"]),
            internal_batch_size=evaluator.batch_size,
            return_convergence_delta=True,
        )
    baseline_value = float(evaluator.rows([[evaluator.pad_id] * inputs.shape[1]])[0])
    return attributions.sum(dim=-1)[0].detach().cpu().numpy(), baseline_value, float(delta.item())


def _run_feature_ablation(model: LoadedModel, resolved: ResolvedTarget, evaluator: _Evaluator, options: dict[str, Any]):
    from captum.attr import FeatureAblation

    with torch.inference_mode():
        attributions = FeatureAblation(evaluator.equal_length).attribute(
            _prompt_tensor(resolved, model), baselines=evaluator.pad_id, perturbations_per_eval=evaluator.batch_size
        )
    return attributions[0].cpu().numpy(), None, None


def _run_shapley_sampling(model: LoadedModel, resolved: ResolvedTarget, evaluator: _Evaluator, options: dict[str, Any]):
    from captum.attr import ShapleyValueSampling

    with torch.inference_mode():
        attributions = ShapleyValueSampling(evaluator.equal_length).attribute(
            _prompt_tensor(resolved, model),
            baselines=evaluator.pad_id,
            n_samples=int(options["n_samples"]),
            perturbations_per_eval=evaluator.batch_size,
        )
    return attributions[0].cpu().numpy(), None, None


def _run_gradient_x_input(model: LoadedModel, resolved: ResolvedTarget, evaluator: _Evaluator, options: dict[str, Any]):
    from captum.attr import InputXGradient

    with torch.enable_grad():
        embeddings = evaluator.token_embeddings(resolved.prompt_ids).requires_grad_()
        attributions = InputXGradient(evaluator.from_token_embeddings).attribute(embeddings)
    return attributions.sum(dim=-1)[0].detach().cpu().numpy(), None, None


_RUNNERS: dict[str, Runner] = {
    "shap": _run_shap,
    "integrated_gradients": _run_integrated_gradients,
    "feature_ablation": _run_feature_ablation,
    "shapley_sampling": _run_shapley_sampling,
    "gradient_x_input": _run_gradient_x_input,
}


# ---------------------------------------------------------------------------------------------
# Faithfulness


@dataclasses.dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves of one attribution, and their AOPC summaries.

    ``deletion[k]``: the target with the ``k`` highest-scored tokens replaced by the baseline token.
    ``insertion[k]``: the target with *only* those ``k`` tokens kept (all others replaced).
    ``comprehensiveness`` = mean over k = 1..n of ``f(x) - deletion[k]`` (higher: the method found
    tokens the output needs). ``sufficiency`` = mean over k of ``f(x) - insertion[k]`` (lower: the
    tokens it found are enough on their own).
    """

    method: str
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    target_value: float
    comprehensiveness: float
    sufficiency: float
    n_evaluations: int


def faithfulness_evaluations(n_tokens: int) -> int:
    """What :func:`faithfulness` costs: a deletion and an insertion curve of n + 1 points each."""
    return 2 * (n_tokens + 1)


def faithfulness(model: LoadedModel, attribution: Attribution, *, batch_size: int = 64) -> Faithfulness:
    """Deletion / insertion curves for ``attribution`` (2(n+1) model evaluations, batched).

    The target is the one the attribution explained, pinned to the same token ids.
    """
    resolved = attribution.target
    evaluator = _Evaluator(model, resolved, batch_size)
    ids = list(resolved.prompt_ids)
    n = len(ids)
    order = np.argsort(-attribution.scores, kind="stable")
    deleted, inserted = [], []
    for k in range(n + 1):
        top = set(order[:k].tolist())
        deleted.append([evaluator.pad_id if i in top else t for i, t in enumerate(ids)])
        inserted.append([t if i in top else evaluator.pad_id for i, t in enumerate(ids)])
    with intervene(model):
        values = evaluator.rows(deleted + inserted)
    deletion, insertion = values[: n + 1], values[n + 1 :]
    full = float(deletion[0])
    return Faithfulness(
        method=attribution.method,
        fractions=np.arange(n + 1) / n,
        deletion=deletion,
        insertion=insertion,
        target_value=full,
        comprehensiveness=float(np.mean(full - deletion[1:])),
        sufficiency=float(np.mean(full - insertion[1:])),
        n_evaluations=evaluator.evaluations,
    )


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation between two score vectors (nan when one is constant)."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)
