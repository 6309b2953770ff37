"""Small examples of the circuit run kinds (patching, ablation, direct logit attribution), for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.circuits import AblationRun, CircuitTask, DirectLogitAttributionRun, EdgeCircuitRun, EdgePatchRun, PatchingRun
from interp.runs import RunSpec

# A short custom pair: the tiny models' tokenizers give both prompts the same length, and the answers one token each.
TASK = CircuitTask.custom("When Mary and John left, John thanked", "When Mary and John left, Mary thanked", " Mary", " John")


def examples(model: LoadedModel) -> list[RunSpec]:
    return [
        PatchingRun(TASK, sites="heads"),
        AblationRun(TASK, ("L0.H1", "L1.mlp_out"), method="mean"),
        DirectLogitAttributionRun(TASK),
        EdgeCircuitRun(TASK, method="eap-ig", steps=2, random_repeats=1, verify=2),
        EdgePatchRun(TASK, ("L0.H1 -> logits",), method="eap"),
    ]
