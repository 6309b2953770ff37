"""Fast mode: a bfloat16 copy of a loaded model for generation-heavy work, and how far it agrees with fp32.

This CPU family has AVX-512 BF16, where bf16 matrix products run about 1.5x faster than fp32 (docs/PERFORMANCE.md).
Generation-heavy work (tuning, sweeps, best-of-N) can take that; analyses (attribution, patching, the lens) stay on
the fp32 model and exact. The copy shares nothing mutable with the original: its own bridge (weights cast one
parameter at a time, so fp32 is never held twice) and its own engine; it shares the original's lock, so the
two never compute at once on the same cores. Buffers such as RoPE's inverse
frequencies stay fp32, as Hugging Face keeps them.

How much the copy differs is measured, not assumed: :func:`fast_agreement` feeds both models the same text and
counts how often their next-token choices agree (teacher-forced, so one early difference does not hide the rest),
and how many greedy continuations come out identical.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch

from interp.generation import generate_batch
from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.tokens import tokenize

FAST_DTYPE = torch.bfloat16


def fast_copy(model: LoadedModel, dtype: torch.dtype = FAST_DTYPE) -> LoadedModel:
    """A copy of ``model`` with its weights in ``dtype`` (bf16 by default), for generation."""
    with intervene(model):  # nobody's hooks are on the bridge while it is copied
        memo: dict[int, object] = {}
        for parameter in model.bridge.parameters():
            memo[id(parameter)] = torch.nn.Parameter(parameter.detach().to(dtype), requires_grad=False)
        bridge = copy.deepcopy(model.bridge, memo)
    info = dataclasses.replace(model.info, dtype=str(dtype).removeprefix("torch."))
    fast = LoadedModel(bridge, model.tokenizer, info, model.folder)
    fast.lock = model.lock  # one torch computation at a time in the process: the two copies take turns for the cores
    return fast


@dataclasses.dataclass(frozen=True)
class FastAgreement:
    """How often the fast copy makes the same choice as the exact model."""

    next_token_agreement: float  # fraction of positions (teacher-forced on the exact model's text) with the same argmax
    identical_continuations: float  # fraction of prompts whose greedy continuation is the same, token for token
    n_prompts: int
    n_tokens: int  # new tokens per prompt

    def describe(self) -> str:
        return (
            f"bf16 picks the same next token as fp32 at {100 * self.next_token_agreement:.1f}% of positions, and "
            f"{100 * self.identical_continuations:.0f}% of {self.n_prompts} greedy {self.n_tokens}-token continuations "
            "are identical"
        )


def fast_agreement(exact: LoadedModel, fast: LoadedModel, prompts: Sequence[str], *, n_tokens: int = 24) -> FastAgreement:
    """Greedy continuations of ``prompts`` on both models, and teacher-forced next-token agreement on exact's text."""
    exact_out = generate_batch(exact, list(prompts), max_new_tokens=n_tokens, temperature=0.0, stop_at_eos=False)
    fast_out = generate_batch(fast, list(prompts), max_new_tokens=n_tokens, temperature=0.0, stop_at_eos=False)
    identical = sum(a[0].token_ids == b[0].token_ids for a, b in zip(exact_out, fast_out, strict=True))
    same, total = 0, 0
    for prompt, generations in zip(prompts, exact_out, strict=True):
        ids = torch.tensor([tokenize(exact, prompt) + list(generations[0].token_ids)])
        start = ids.shape[1] - n_tokens - 1  # the position that predicts the first new token
        choices = []
        for model in (exact, fast):
            with intervene(model), torch.inference_mode():
                choices.append(model.bridge(ids.to(model.device))[0, start:-1].argmax(-1).cpu())
        same += int((choices[0] == choices[1]).sum())
        total += n_tokens
    return FastAgreement(same / total, identical / len(prompts), len(prompts), n_tokens)
