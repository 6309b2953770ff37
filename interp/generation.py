"""Text generation through the bridge, with a KV cache, greedy or seeded sampling.

We run our own decode loop instead of ``generate`` so that hooks (steering vectors, ablations)
apply to every step and know which absolute positions they see: the prompt pass covers positions
``0..P-1``, each decode step one new position. The loop keeps a Hugging Face ``DynamicCache``, so
a step costs one token's forward pass; without the cache generation is ~4x slower here.

Greedy output equals Hugging Face ``generate`` on an un-bridged copy of the weights, token for
token (tested). Sampling is reproducible: each sample owns a ``torch.Generator`` seeded from
``seed + sample_index``, so a sample's text does not depend on how many others were drawn with it.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping

import torch
from transformers import DynamicCache

from interp.errors import InputError
from interp.hooks import HookFn, HookSpec, current_activity, intervene
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, check_length, pad_rows, tokenize
from interp.validation import check_count, check_finite, check_text, check_texts


@dataclasses.dataclass(frozen=True)
class Generation:
    """One generated continuation."""

    prompt: str
    text: str
    token_ids: tuple[int, ...]
    prompt_token_ids: tuple[int, ...]
    seed: int | None
    finish_reason: str  # "eos" or "length"
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else float("nan")


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen: greedy at temperature 0, else seeded sampling."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        check_finite("temperature", self.temperature)  # NaN passed every comparison here and failed in sampling
        if self.temperature < 0:
            raise InputError(f"Temperature must be 0 (greedy) or positive (got {self.temperature:g}).")
        check_finite("top_p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1] (got {self.top_p:g}).")
        check_count("top_k", self.top_k, low=0)  # 0 is off


def choose_tokens(logits: torch.Tensor, settings: SamplingSettings, generators: list[torch.Generator]) -> torch.Tensor:
    """Next token per row from last-position logits ``[rows, vocab]``.

    Logits that are not numbers (an intervention pushed the residual stream to infinity) raise a clear
    :class:`InputError` rather than picking token 0 (greedy) or failing deep in ``multinomial`` (sampled)."""
    if bool(torch.isnan(logits).any()) or bool(torch.isposinf(logits).any()):
        raise InputError(
            "The model's next-token scores became NaN or infinite: an intervention is too strong "
            "(lower the steering coefficient, or steer fewer layers)."
        )
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / settings.temperature
    if settings.top_k:
        kth = torch.topk(scaled, min(settings.top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if settings.top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > settings.top_p  # keep the first token crossing top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    rows = [torch.multinomial(probs[i], 1, generator=generators[i]) for i in range(probs.shape[0])]
    return torch.cat(rows)


def generate_samples(
    model: LoadedModel,
    prompt: str,
    *,
    max_new_tokens: int = 32,
    n_samples: int = 1,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_at_eos: bool = True,
    chat: bool = False,
    hooks: HookSpec | None = None,
) -> list[Generation]:
    """Generate ``n_samples`` continuations of one prompt as a batch, with a KV cache.

    Args:
        seed: Sample ``i`` uses ``seed + i``. None draws a seed and records it in the result.
        hooks: Optional hooks applied to every forward pass (see :func:`interp.hooks.intervene`).

    Returns:
        One :class:`Generation` per sample, in seed order.
    """
    check_text("prompt", prompt)
    if temperature > 0 and seed is None:
        seed = random.randrange(2**31)
    return generate_batch(
        model,
        [prompt],
        max_new_tokens=max_new_tokens,
        n_samples=n_samples,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed or 0,
        stop_at_eos=stop_at_eos,
        chat=chat,
        hooks=hooks,
    )[0]


def generate_batch(
    model: LoadedModel,
    prompts: list[str],
    *,
    max_new_tokens: int = 32,
    n_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_eos: bool = True,
    chat: bool = False,
    hooks: HookSpec | None = None,
) -> list[list[Generation]]:
    """Sample ``n_samples`` continuations of every prompt, decoded by the model's engine (:mod:`interp.engine`).

    Used by evaluations and sweeps, where many short samples are needed; their rows decode in the same batch as
    every other caller's (an interactive slider move is not queued behind a sweep). Sample ``i`` of prompt ``j``
    uses seed ``seed + j * n_samples + i``, so results do not depend on which other rows share the batch (up to
    float rounding under padding). ``hooks`` apply to these prompts' rows only. Called inside
    :func:`interp.hooks.intervene` (``with steer(...)``), whose hooks see every forward pass of this thread, it
    decodes here instead (:func:`generate_batch_serial`).

    Returns:
        For each prompt, its samples.
    """
    from interp.engine import GenerationRequest, engine_for
    from interp.hooks import holds_model

    if isinstance(prompts, list | tuple) and not prompts:
        return []
    options = {
        "max_new_tokens": max_new_tokens, "n_samples": n_samples, "temperature": temperature, "top_k": top_k,
        "top_p": top_p, "seed": seed, "stop_at_eos": stop_at_eos, "chat": chat, "hooks": hooks,
    }  # fmt: skip
    if holds_model(model):
        return generate_batch_serial(model, prompts, **options)
    prompts, encoded, settings = _checked(model, prompts, max_new_tokens, n_samples, temperature, top_k, top_p, chat)
    engine = engine_for(model)
    hook_pairs = tuple(_normalise_hooks(hooks))
    streams = [
        engine.submit(
            GenerationRequest(
                prompt, tuple(ids), max_new_tokens=max_new_tokens, n_samples=n_samples, sampling=settings,
                seed=seed + j * n_samples, stop_at_eos=stop_at_eos, hooks=hook_pairs, label=current_activity() or "generation",
            )
        )
        for j, (prompt, ids) in enumerate(zip(prompts, encoded, strict=True))
    ]  # fmt: skip
    try:
        out = [stream.result() for stream in streams]
    finally:
        for stream in streams:
            stream.cancel()  # a caller interrupted (Stop, an error) takes its rows out of the batch
    return out


def _checked(
    model: LoadedModel, prompts: list[str], max_new_tokens: int, n_samples: int, temperature: float, top_k: int,
    top_p: float, chat: bool,
) -> tuple[list[str], list[list[int]], SamplingSettings]:  # fmt: skip
    prompts = list(check_texts("prompts", prompts))
    check_count("max_new_tokens", max_new_tokens)
    check_count("n_samples", n_samples)
    settings = SamplingSettings(temperature, top_k, top_p)
    encoded = [tokenize(model, prompt, chat=chat) for prompt in prompts]
    for ids in encoded:
        check_length(model, len(ids) + max_new_tokens, what="A prompt plus the tokens to generate")
    return prompts, encoded, settings


def _normalise_hooks(hooks: HookSpec | None) -> list[tuple[str, HookFn]]:
    if hooks is None:
        return []
    return list(hooks.items()) if isinstance(hooks, Mapping) else list(hooks)


def generate_batch_serial(
    model: LoadedModel,
    prompts: list[str],
    *,
    max_new_tokens: int = 32,
    n_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_eos: bool = True,
    chat: bool = False,
    hooks: HookSpec | None = None,
) -> list[list[Generation]]:
    """:func:`generate_batch` decoded in this thread, holding the model's lock throughout (left-padded, KV-cached).

    The reference the engine is tested against (it equals Hugging Face ``generate``, tested), and the path taken
    inside an intervention block.
    """
    if isinstance(prompts, list | tuple) and not prompts:
        return []
    prompts, encoded, settings = _checked(model, prompts, max_new_tokens, n_samples, temperature, top_k, top_p, chat)
    rows = [ids for ids in encoded for _ in range(n_samples)]
    padded = pad_rows(rows, baseline_token_id(model), side="left")
    tokens, mask = padded.tokens, padded.mask
    generators = []
    for i in range(len(rows) if settings.temperature > 0 else 0):
        generator = torch.Generator(device=model.device)
        generator.manual_seed(seed + i)
        generators.append(generator)
    eos = model.tokenizer.eos_token_id if stop_at_eos else None
    start = time.perf_counter()
    new_tokens = torch.empty((len(rows), 0), dtype=torch.long, device=model.device)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=model.device)
    padded = bool((mask == 0).any())
    with intervene(model, hooks), torch.inference_mode():
        cache = DynamicCache(config=model.hf_model.config)
        step_input, position = tokens.to(model.device), 0
        attention = mask.to(model.device)
        for _ in range(max_new_tokens):
            model.position_offset = position
            logits = model.bridge(
                step_input, past_key_values=cache, attention_mask=attention if padded else None, logits_to_keep=1
            )
            position += step_input.shape[1]
            next_tokens = choose_tokens(logits[:, -1, :], settings, generators)
            if eos is not None:
                next_tokens = torch.where(finished, torch.full_like(next_tokens, eos), next_tokens)
                finished |= next_tokens == eos
            new_tokens = torch.cat([new_tokens, next_tokens[:, None]], dim=1)
            if eos is not None and bool(finished.all()):
                break
            step_input = next_tokens[:, None]
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
    seconds = time.perf_counter() - start
    out: list[list[Generation]] = []
    for j, prompt in enumerate(prompts):
        samples = []
        for i in range(n_samples):
            r = j * n_samples + i
            row = new_tokens[r].tolist()
            reason = "length"
            if eos is not None and eos in row:
                row, reason = row[: row.index(eos) + 1], "eos"
            samples.append(
                Generation(
                    prompt,
                    model.tokenizer.decode(row, skip_special_tokens=True),
                    tuple(row),
                    tuple(encoded[j]),
                    None if settings.temperature == 0 else seed + r,
                    reason,
                    seconds,
                )
            )
        out.append(samples)
    return out


def generate(
    model: LoadedModel,
    prompt: str,
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_at_eos: bool = True,
    chat: bool = False,
    hooks: HookSpec | None = None,
) -> Generation:
    """Generate one continuation of ``prompt`` (greedy unless ``temperature > 0``).

    Example:
        >>> generate(model, "I love dogs because", max_new_tokens=8).text
        ' they are my family. I've always'
    """
    return generate_samples(
        model,
        prompt,
        max_new_tokens=max_new_tokens,
        n_samples=1,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop_at_eos=stop_at_eos,
        chat=chat,
        hooks=hooks,
    )[0]
