"""Small examples of the compression study (no IOI: the tiny tokenizers split the names) and of steering transfer."""

from __future__ import annotations

from interp import LoadedModel
from interp.compression import CompressionStudyRun, Variant
from interp.runs import RunSpec
from steering.transfer import SteeringTransferRun


def examples(model: LoadedModel) -> list[RunSpec]:
    return [
        CompressionStudyRun((Variant("bf16"), Variant("prune_unstructured", 0.3)), windows=1, length=32, ioi=False),
        SteeringTransferRun(Variant("int8_weight"), layer=1, n_samples=1, max_new_tokens=4),
    ]
