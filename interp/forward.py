"""Plain and hooked forward passes, always under the model's lock."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from interp.hooks import HookSpec, intervene
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_count, default_of
from interp.tokens import as_batch, check_length, token_labels, tokenize


def run_logits(model: LoadedModel, token_ids: torch.Tensor, hooks: HookSpec | None = None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` for a batch of equal-length token rows."""
    with intervene(model, hooks), torch.no_grad():
        return model.bridge(token_ids.to(model.device))


@dataclasses.dataclass(frozen=True)
class NextTokenPredictions:
    """The model's most likely next tokens after a prompt."""

    prompt_tokens: tuple[str, ...]
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    probabilities: tuple[float, ...]
    logits: tuple[float, ...]


def next_token_predictions(model: LoadedModel, prompt: str, *, k: int = 10, chat: bool = False) -> NextTokenPredictions:
    """Top-``k`` next tokens with their probabilities (softmax over the full vocabulary)."""
    ids = tokenize(model, prompt, chat=chat)
    check_length(model, len(ids))
    logits = run_logits(model, as_batch(ids, model))[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, min(k, probs.shape[-1]))
    top_ids = top.indices.tolist()
    return NextTokenPredictions(
        prompt_tokens=tuple(token_labels(model, ids)),
        tokens=tuple(token_labels(model, top_ids)),
        token_ids=tuple(top_ids),
        probabilities=tuple(float(p) for p in top.values),
        logits=tuple(float(logits[i]) for i in top_ids),
    )


@dataclasses.dataclass(frozen=True)
class NextTokenRun(RunSpec):
    """The model's top next tokens after one prompt (the Home page's view)."""

    kind: ClassVar[str] = "next_token"
    title: ClassVar[str] = "Next-token predictions"
    mirrors = (next_token_predictions,)

    prompt: str
    k: int = default_of(next_token_predictions, "k")
    chat: bool = default_of(next_token_predictions, "chat")

    def __post_init__(self) -> None:
        check_count("number of predictions", self.k, high=1000)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> NextTokenPredictions:
        return next_token_predictions(model, self.prompt, k=self.k, chat=self.chat)
