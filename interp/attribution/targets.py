"""What an attribution explains: a number computed from the model's output for one prompt.

A :class:`Target` is the user's description (a token, a continuation, a contrast of two tokens, or
any scalar function such as a reward); :func:`resolve_target` pins it to token ids for one prompt,
so every re-evaluation of a perturbed prompt reads the same tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from interp.errors import InputError
from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.tokens import check_length, single_token_id, tokenize

TargetKind = Literal["next_token", "continuation", "contrast", "scalar"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What to explain. Build with :meth:`next_token`, :meth:`continuation`, :meth:`contrast` or :meth:`scalar`."""

    kind: TargetKind
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
        returns ``[rows]``. It must run the model through :func:`interp.hooks.intervene`. A function is
        not data, so a run with a scalar target cannot be kept or replayed.
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


def resolve_target(model: LoadedModel, prompt: str | Sequence[int], target: Target) -> ResolvedTarget:
    """Pin ``target`` to token ids for ``prompt`` (the top prediction is looked up once, here)."""
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
