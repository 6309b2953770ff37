"""Tables a page shows beside the figures (and downloads): what runs will cost, how methods compare."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from interp.attribution.checks import faithfulness_evaluations
from interp.attribution.methods import AttributionMethod
from interp.attribution.runs import AttributionComparison


def cost_frame(methods: Sequence[AttributionMethod], n_tokens: int, budget: int, prompts: int = 1) -> pd.DataFrame:
    """Model evaluations each method will take on an ``n_tokens`` prompt (times ``prompts``), before it runs."""
    return pd.DataFrame(
        [
            {
                "method": method.title,
                "model evaluations (estimate)": method.evaluations(n_tokens) * prompts,
                # Every result's faithfulness is checked too: that is part of what the user waits for.
                "+ faithfulness check": faithfulness_evaluations(n_tokens) * prompts,
                "within budget": "yes" if method.evaluations(n_tokens) <= budget else "NO: raise the budget",
            }
            for method in methods
        ]
    )


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
