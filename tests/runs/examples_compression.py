"""A small example of the compression study, for the tiny fixtures (no IOI: their tokenizer splits the names)."""

from __future__ import annotations

from interp import LoadedModel
from interp.compression import CompressionStudyRun, Variant
from interp.runs import RunSpec


def examples(model: LoadedModel) -> list[RunSpec]:
    return [CompressionStudyRun((Variant("bf16"), Variant("prune_unstructured", 0.3)), windows=1, length=32, ioi=False)]
