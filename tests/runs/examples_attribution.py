"""Small examples of the attribution run kinds, for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.attribution import AttributionRun, FeatureAblation, GradientXInput, MethodComparison, ShapleySampling, Target
from interp.attribution_batch import BatchAttribution
from interp.prompt_files import PromptRow
from interp.runs import RunSpec

PROMPT = "When Mary and John went to the store, John gave a drink to"


def examples(model: LoadedModel) -> list[RunSpec]:
    return [
        AttributionRun(PROMPT, ShapleySampling(n_samples=2), Target.contrast(" Mary", " John")),
        MethodComparison(PROMPT, (FeatureAblation(), GradientXInput()), Target.next_token(" Mary"), budget=1000),
        BatchAttribution(
            (PromptRow(2, "I love dogs because", target=" they"), PromptRow(3, "The store is", continuation=" closed today")),
            (FeatureAblation(),),
        ),
    ]
