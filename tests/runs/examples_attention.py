"""Small examples of the next-token, attention and lens run kinds, for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.attention import AttentionRun, HeadScoresRun
from interp.forward import NextTokenRun
from interp.lens import LogitLensRun
from interp.runs import RunSpec

PROMPT = "When Mary and John went to the store, John gave a drink to"


def examples(model: LoadedModel) -> list[RunSpec]:
    return [
        NextTokenRun(PROMPT, k=5),
        AttentionRun(PROMPT, max_tokens=256),
        HeadScoresRun(n_sequences=2, repeat_length=8),
        LogitLensRun(PROMPT, target=" Mary"),
    ]
