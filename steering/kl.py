"""Damage as KL: how far steering moves the model's next-token distributions on the text it generated.

Perplexity asks how surprised the *unsteered* model is by the steered text; distinct-n asks whether the text
repeats itself. Neither says how much steering changed the model's predictions. This module measures that
directly: for each prompt and its generated continuation, the mean over the generated positions of

    KL(unsteered ‖ steered) = Σ_v p(v) · (log p(v) − log q(v))      (nats; 0 when steering changes nothing)

where ``p`` and ``q`` are the next-token distributions without and with the steering hooks, at the positions that
produced the continuation's tokens: the last prompt position (which chose the first generated token) through the
one before the last generated token. Both are teacher-forced over the same prompt + continuation, so the two
models are compared on exactly the same text.

Positions as generation saw them: each forward pass runs the prompt first (position offset 0) and then the
continuation (offset = prompt length) on the same KV cache, so steering that acts only on the prompt or only on
generated positions (:mod:`steering.apply`'s ``positions``) acts here as it did while generating. Log-softmax is
taken in float64, so the small KL of gentle steering is not lost to rounding.

Trust it as a measure of change, not of harm: a large KL can be the intended behaviour change itself. It is shown
next to perplexity and distinct-n, which judge the text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from transformers import DynamicCache

from interp.errors import InputError
from interp.hooks import HookSpec, intervene
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, check_length, pad_rows, tokenize
from interp.validation import MAX_TEXTS

BATCH_SIZE = 8  # rows per teacher-forced pass: two [8, positions, d_vocab] logit tensors (~90 MB for SmolLM2 at 30 tokens)


@dataclasses.dataclass(frozen=True)
class KLDamage:
    """KL(unsteered ‖ steered) over generated positions.

    Attributes:
        per_sample: Each continuation's mean over its generated positions (NaN for an empty continuation).
        per_position: Each continuation's value at each generated position (empty for an empty continuation).
        mean: The mean of ``per_sample`` over the continuations that have tokens (each prompt counts once).
        unit: Always ``"nats"`` (natural log).
    """

    per_sample: tuple[float, ...]
    per_position: tuple[tuple[float, ...], ...]
    mean: float
    unit: str = "nats"


def continuation_log_probs(
    model: LoadedModel, prompt_ids: Sequence[int], continuation_ids: Sequence[int], hooks: HookSpec | None = None
) -> torch.Tensor:
    """Log-probabilities ``[len(continuation), d_vocab]`` (float64, CPU) of the distributions that produced each
    continuation token, teacher-forced with ``hooks``: the prompt pass at offset 0, then the continuation at its own
    positions on the same KV cache (as :func:`interp.generation.generate` runs them)."""
    prompt = torch.tensor([list(prompt_ids)], dtype=torch.long, device=model.device)
    # the last continuation token predicts nothing we compare, so it is not fed
    rest = torch.tensor([list(continuation_ids)[:-1]], dtype=torch.long, device=model.device)
    with intervene(model, hooks), torch.inference_mode():
        cache = DynamicCache(config=model.hf_model.config)
        model.position_offset = 0
        parts = [model.bridge(prompt, past_key_values=cache, logits_to_keep=1)[0, -1:]]  # [1, d_vocab]
        if rest.shape[1] > 0:
            model.position_offset = prompt.shape[1]
            parts.append(model.bridge(rest, past_key_values=cache)[0])  # [n - 1, d_vocab]
    return torch.log_softmax(torch.cat(parts).double(), dim=-1).cpu()


def kl_divergence(reference_log_probs: torch.Tensor, other_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(reference ‖ other) per row of two ``[..., d_vocab]`` log-probability tensors, in nats."""
    return (reference_log_probs.exp() * (reference_log_probs - other_log_probs)).sum(dim=-1)


def mean_kl(
    model: LoadedModel,
    prompts: Sequence[str | Sequence[int]],
    generated_token_ids: Sequence[Sequence[int]],
    steering_hooks: HookSpec | None,
) -> KLDamage:
    """Mean KL(unsteered ‖ steered) of the next-token distributions over each continuation's generated positions.

    Args:
        prompts: The prompts as text, or as token ids (a :class:`~interp.Generation`'s ``prompt_token_ids``, e.g. for
            chat-formatted prompts).
        generated_token_ids: One continuation per prompt (a Generation's ``token_ids``), any length (0 gives NaN).
        steering_hooks: The steering as ``(hook name, function)`` pairs (:func:`steering.apply.steering_hooks`,
            :func:`steering.angular.angular_hooks`); None compares the model with itself (KL 0).

    Raises:
        InputError: no prompts, a different number of prompts and continuations, a token id outside the vocabulary,
            a prompt + continuation longer than the model's context, or no continuation with any token.

    Example:
        >>> g = generate(model, "I think the weather", max_new_tokens=20, hooks=hooks)
        >>> mean_kl(model, [g.prompt_token_ids], [g.token_ids], hooks).mean
        0.42
    """
    jobs = _checked_jobs(model, prompts, generated_token_ids)
    per_position: list[tuple[float, ...]] = []
    for prompt_ids, continuation_ids in jobs:
        if not continuation_ids:
            per_position.append(())
            continue
        plain = continuation_log_probs(model, prompt_ids, continuation_ids)
        steered = continuation_log_probs(model, prompt_ids, continuation_ids, steering_hooks)
        per_position.append(tuple(kl_divergence(plain, steered).tolist()))
    return _damage(per_position)


def mean_kl_batched(
    model: LoadedModel,
    prompts: Sequence[str | Sequence[int]],
    generated_token_ids: Sequence[Sequence[int]],
    steering_hooks: HookSpec | None,
    *,
    batch_size: int = BATCH_SIZE,
) -> KLDamage:
    """:func:`mean_kl`, with the continuations teacher-forced in batches: the same numbers (within float rounding,
    tested ≤ 1e-6 nats) in far fewer forward passes.

    Continuations are grouped by their prompt's length, so every row of a batch has its prompt at positions
    ``0..P-1`` and its continuation from ``P`` on: one prompt pass (offset 0) and one continuation pass (offset
    ``P``) serve the whole batch exactly as they serve one prompt in :func:`mean_kl`, and a hook that acts only on
    the prompt or only on generated positions acts as it did while generating. Shorter continuations are padded on
    the right; causal attention keeps the padding out of every real position, so no attention mask is needed. Rows
    with no prompt-length partner run as batches of one. Without steering hooks nothing runs: the KL is exactly 0.

    Args:
        batch_size: Rows per forward pass (memory: two ``[batch, positions, d_vocab]`` float32 logit tensors).

    Raises:
        InputError: as :func:`mean_kl`.
    """
    jobs = _checked_jobs(model, prompts, generated_token_ids)
    per_position: list[tuple[float, ...]] = [() for _ in jobs]
    groups: dict[int, list[int]] = {}
    for index, (prompt_ids, continuation_ids) in enumerate(jobs):
        if continuation_ids:
            groups.setdefault(len(prompt_ids), []).append(index)
    for indices in groups.values():
        for first in range(0, len(indices), batch_size):
            chunk = indices[first : first + batch_size]
            if not steering_hooks:  # the model compared with itself: every position's KL is exactly 0
                for index in chunk:
                    per_position[index] = (0.0,) * len(jobs[index][1])
                continue
            rows = [jobs[index] for index in chunk]
            plain = _batch_logits(model, rows, None)
            steered = _batch_logits(model, rows, steering_hooks)
            for row, index in enumerate(chunk):
                n = len(jobs[index][1])
                p = torch.log_softmax(plain[row, :n].double(), dim=-1)
                q = torch.log_softmax(steered[row, :n].double(), dim=-1)
                per_position[index] = tuple(kl_divergence(p, q).tolist())
    return _damage(per_position)


def _batch_logits(model: LoadedModel, rows: Sequence[tuple[list[int], list[int]]], hooks: HookSpec | None) -> torch.Tensor:
    """Logits ``[rows, longest continuation, d_vocab]`` (float32, CPU) that produced each continuation token, for rows
    whose prompts have one length: the prompts' pass at offset 0, then the continuations (right-padded) on its cache."""
    prompts = torch.tensor([prompt for prompt, _ in rows], dtype=torch.long, device=model.device)  # [B, P]
    rests = [continuation[:-1] for _, continuation in rows]  # the last token predicts nothing we compare
    with intervene(model, hooks), torch.inference_mode():
        cache = DynamicCache(config=model.hf_model.config)
        model.position_offset = 0
        parts = [model.bridge(prompts, past_key_values=cache, logits_to_keep=1)[:, -1:].float()]  # [B, 1, d_vocab]
        if max(len(rest) for rest in rests) > 0:
            padded = pad_rows(rests, baseline_token_id(model), side="right").tokens.to(model.device)  # [B, n - 1]
            model.position_offset = prompts.shape[1]
            parts.append(model.bridge(padded, past_key_values=cache).float())  # [B, n - 1, d_vocab]
    return torch.cat(parts, dim=1).cpu()


def _checked_jobs(
    model: LoadedModel, prompts: Sequence[str | Sequence[int]], generated_token_ids: Sequence[Sequence[int]]
) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, continuation ids)`` per prompt, checked as :func:`mean_kl` documents."""
    if not prompts:
        raise InputError("Give at least one prompt to measure KL on.")
    if len(prompts) > MAX_TEXTS:
        raise InputError(f"At most {MAX_TEXTS} prompts at once (got {len(prompts)}).")
    if len(prompts) != len(generated_token_ids):
        raise InputError(
            f"{len(prompts)} prompt(s) but {len(generated_token_ids)} continuation(s); give one continuation per prompt."
        )
    jobs = []
    for prompt, continuation in zip(prompts, generated_token_ids, strict=True):
        prompt_ids = tokenize(model, prompt)
        continuation_ids = _checked_ids(model, continuation)
        check_length(model, len(prompt_ids) + len(continuation_ids), what="A prompt with its continuation")
        jobs.append((prompt_ids, continuation_ids))
    if not any(continuation for _, continuation in jobs):
        raise InputError("None of the continuations has any tokens; generate some text before measuring KL.")
    return jobs


def _damage(per_position: Sequence[tuple[float, ...]]) -> KLDamage:
    per_sample = tuple(math.fsum(values) / len(values) if values else math.nan for values in per_position)
    measured = [value for value in per_sample if not math.isnan(value)]
    return KLDamage(per_sample=per_sample, per_position=tuple(per_position), mean=math.fsum(measured) / len(measured))


def _checked_ids(model: LoadedModel, ids: Sequence[int]) -> list[int]:
    if isinstance(ids, str | bytes) or not hasattr(ids, "__iter__"):
        raise InputError(f"A continuation must be a list of token ids, not {type(ids).__name__}.")
    try:
        values = [int(i) for i in ids]
    except (TypeError, ValueError):
        raise InputError("A continuation's token ids must be whole numbers.") from None
    if values and (min(values) < 0 or max(values) >= model.info.d_vocab):
        raise InputError(f"A continuation has a token id outside 0..{model.info.d_vocab - 1}.")
    return values
