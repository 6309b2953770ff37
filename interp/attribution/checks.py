"""How far to trust an attribution: deletion and insertion curves (DeYoung et al. 2020), rank agreement.

Delete the most important tokens first and watch the target fall (comprehensiveness: the mean drop,
higher is better); keep only the most important tokens and watch the target recover (sufficiency:
the mean remaining gap, lower is better).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from interp.attribution.evaluation import Evaluator
from interp.attribution.explain import Attribution
from interp.hooks import intervene
from interp.loading import LoadedModel


@dataclasses.dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves of one attribution, and their AOPC summaries.

    ``deletion[k]``: the target with the ``k`` highest-scored tokens replaced by the baseline token.
    ``insertion[k]``: the target with *only* those ``k`` tokens kept (all others replaced).
    ``comprehensiveness`` = mean over k = 1..n of ``f(x) - deletion[k]`` (higher: the method found
    tokens the output needs). ``sufficiency`` = mean over k of ``f(x) - insertion[k]`` (lower: the
    tokens it found are enough on their own).
    """

    method: str
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    target_value: float
    comprehensiveness: float
    sufficiency: float
    n_evaluations: int


def faithfulness_evaluations(n_tokens: int) -> int:
    """What :func:`faithfulness` costs: a deletion and an insertion curve of n + 1 points each."""
    return 2 * (n_tokens + 1)


def faithfulness(model: LoadedModel, attribution: Attribution, *, batch_size: int = 64) -> Faithfulness:
    """Deletion / insertion curves for ``attribution`` (2(n+1) model evaluations, batched).

    The target is the one the attribution explained, pinned to the same token ids.
    """
    resolved = attribution.target
    evaluator = Evaluator(model, resolved, batch_size)
    ids = list(resolved.prompt_ids)
    n = len(ids)
    order = np.argsort(-attribution.scores, kind="stable")
    deleted, inserted = [], []
    for k in range(n + 1):
        top = set(order[:k].tolist())
        deleted.append([evaluator.pad_id if i in top else t for i, t in enumerate(ids)])
        inserted.append([t if i in top else evaluator.pad_id for i, t in enumerate(ids)])
    with intervene(model):
        values = evaluator.rows(deleted + inserted)
    deletion, insertion = values[: n + 1], values[n + 1 :]
    full = float(deletion[0])
    return Faithfulness(
        method=attribution.method,
        fractions=np.arange(n + 1) / n,
        deletion=deletion,
        insertion=insertion,
        target_value=full,
        comprehensiveness=float(np.mean(full - deletion[1:])),
        sufficiency=float(np.mean(full - insertion[1:])),
        n_evaluations=evaluator.evaluations,
    )


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation between two score vectors (nan when one is constant)."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)
