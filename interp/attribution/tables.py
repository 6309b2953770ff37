"""Tables a page shows beside the figures (and downloads): what runs will cost, how methods compare."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from interp.attribution.checks import faithfulness_evaluations
from interp.attribution.methods import AttributionMethod
from interp.attribution.runs import AttributionComparison
from interp.cost import CostEstimate, estimate_seconds


def method_cost(method: AttributionMethod, n_tokens: int, seconds_per_evaluation: float, prompts: int = 1) -> CostEstimate:
    """Seconds one method takes on ``prompts`` prompts of ``n_tokens`` tokens, its faithfulness check included."""
    own = estimate_seconds(method.evaluations(n_tokens) * prompts, seconds_per_evaluation * method.cost_factor)
    return own + estimate_seconds(faithfulness_evaluations(n_tokens) * prompts, seconds_per_evaluation)


def attribution_cost(
    methods: Sequence[AttributionMethod], n_tokens: int, seconds_per_evaluation: float, prompts: int = 1
) -> CostEstimate:
    """Seconds the whole run takes (every method, every prompt, the faithfulness checks), before it starts.

    Example:
        >>> attribution_cost([FeatureAblation()], 14, 0.01).describe()
        'under 1 s (46 forward passes at 10 ms)'
    """
    total = estimate_seconds(0, seconds_per_evaluation)
    for method in methods:
        total = total + method_cost(method, n_tokens, seconds_per_evaluation, prompts)
    return total


def cost_frame(
    methods: Sequence[AttributionMethod],
    n_tokens: int,
    budget: int,
    prompts: int = 1,
    seconds_per_evaluation: float | None = None,
) -> pd.DataFrame:
    """Model evaluations each method will take on an ``n_tokens`` prompt (times ``prompts``), before it runs,
    and, given the measured ``seconds_per_evaluation``, how long that is."""
    rows = []
    for method in methods:
        row = {
            "method": method.title,
            "model evaluations (estimate)": method.evaluations(n_tokens) * prompts,
            # Every result's faithfulness is checked too: that is part of what the user waits for.
            "+ faithfulness check": faithfulness_evaluations(n_tokens) * prompts,
            "within budget": "yes" if method.evaluations(n_tokens) <= budget else "NO: raise the budget",
        }
        if seconds_per_evaluation is not None:
            row["time (estimate, s)"] = round(method_cost(method, n_tokens, seconds_per_evaluation, prompts).seconds, 1)
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_frame(comparison: AttributionComparison) -> pd.DataFrame:
    """Per method: faithfulness, cost and Integrated Gradients' convergence delta."""
    return pd.DataFrame(
        [
            {
                "method": r.title,
                "comprehensiveness (higher = better)": round(c.comprehensiveness, 4),
                "sufficiency (lower = better)": round(c.sufficiency, 4),
                "model evaluations": r.n_evaluations,
                "time (s)": round(r.seconds, 2),
                "IG convergence delta": None if r.convergence_delta is None else round(r.convergence_delta, 4),
            }
            for r, c in zip(comparison.attributions, comparison.curves, strict=True)
        ]
    )
