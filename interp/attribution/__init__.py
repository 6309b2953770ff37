"""Which input tokens made the model say this? Token attributions with SHAP and Captum.

A *target* is a number computed from the model's output for a prompt — the log-probability of the
next token (by default the model's top prediction), the summed log-probability of a multi-token
continuation, or the logit difference between two candidate tokens. An attribution method splits
that number among the prompt's tokens:

* **SHAP (Partition)** — Owen values over a hierarchy of token groups, from ``shap``'s Partition
  explainer with a text masker on the model's tokenizer. Satisfies local accuracy: the base value
  plus the token values equals the target exactly.
* **Integrated Gradients** — Captum's ``IntegratedGradients`` on the token embeddings: gradients
  averaged along a straight path from a baseline (every token replaced by the baseline token) to
  the input. Completeness: the attributions sum to ``f(x) - f(baseline)`` up to the *convergence
  delta*, which shrinks with more steps; a large delta means the numbers are not yet trustworthy.
* **Feature ablation (occlusion)** — Captum: replace one token at a time by the baseline token and
  record the drop. Cheap and easy to read; blind to tokens that matter only together.
* **Shapley value sampling** — Captum: average marginal contribution over random token orderings.
  Unbiased Shapley estimates; cost grows with the number of samples.
* **Gradient × input** — Captum's ``InputXGradient`` on the token embeddings: one backward
  pass. Fast, local, and often unfaithful; the faithfulness check shows when.

Every method "removes" a token the same way: it becomes the baseline token (the tokenizer's pad
token, else its unknown or end token). SHAP's text masker is given that token's id, so it masks
with the same token and masked rows keep the prompt's length.

Faithfulness (DeYoung et al. 2020): delete the most important tokens first and watch the target
fall (comprehensiveness: the mean drop, higher is better); keep only the most important tokens
and watch the target recover (sufficiency: the mean remaining gap, lower is better). Compare
methods on *your* prompt by these numbers, not by how plausible the heatmaps look.

All model evaluations are batched, and every run holds the model's lock through
:func:`interp.hooks.intervene`; Captum's gradient methods reach the embeddings through that one hook
context, never through hooks of their own on the shared model.

Layout: :mod:`~interp.attribution.targets` (what to explain), :mod:`~interp.attribution.methods` (one
class per method), :mod:`~interp.attribution.explain` (:func:`attribute`), :mod:`~interp.attribution.checks`
(faithfulness), :mod:`~interp.attribution.runs` (the run specs a page keeps and a replay runs again).
Adding a method is one class in ``methods.py``.
"""

from interp.attribution.checks import Faithfulness, faithfulness, faithfulness_evaluations, rank_agreement
from interp.attribution.evaluation import Evaluator
from interp.attribution.explain import DEFAULT_BATCH_SIZE, DEFAULT_BUDGET, Attribution, attribute, estimate_evaluations
from interp.attribution.methods import (
    COMPARED_BY_DEFAULT,
    DEFAULT_METHOD,
    METHODS,
    AttributionMethod,
    FeatureAblation,
    GradientXInput,
    IntegratedGradients,
    MethodOption,
    MethodScores,
    Shap,
    ShapleySampling,
    method_of,
)
from interp.attribution.runs import (
    AttributionComparison,
    AttributionRun,
    CheckedAttribution,
    MethodComparison,
    check_keepable_target,
)
from interp.attribution.targets import ResolvedTarget, Target, resolve_target

__all__ = [
    "COMPARED_BY_DEFAULT",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BUDGET",
    "DEFAULT_METHOD",
    "METHODS",
    "Attribution",
    "AttributionComparison",
    "AttributionMethod",
    "AttributionRun",
    "CheckedAttribution",
    "Evaluator",
    "Faithfulness",
    "FeatureAblation",
    "GradientXInput",
    "IntegratedGradients",
    "MethodComparison",
    "MethodOption",
    "MethodScores",
    "ResolvedTarget",
    "Shap",
    "ShapleySampling",
    "Target",
    "attribute",
    "check_keepable_target",
    "estimate_evaluations",
    "faithfulness",
    "faithfulness_evaluations",
    "method_of",
    "rank_agreement",
    "resolve_target",
]
