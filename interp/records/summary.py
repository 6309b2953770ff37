"""What a kept run found, in a few numbers: a summary table for any result, and its numbers by name.

Every kind of result gets the same treatment, without the records knowing its type: the numbers are
found by walking the result's fields (a :class:`~interp.runs.spec.Bundle` part by part), each scalar is
a row, and each array is summarised by its largest value and where it is (using the result's own
row and column labels when it has them). Units come from the field's name and the result's metric
label, so a patching score reads "fraction of the clean metric recovered" and a probability reads
"probability". :func:`named_numbers` gives the same numbers keyed by their path, which is what
:func:`interp.records.compare_runs` compares by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from interp.runs.spec import Bundle

MAX_ROWS_PER_PART = 12  # a summary is a glance, not a dump: the figure and the JSON hold the rest

# What a field's numbers are measured in, by the field's name (a result's metric label, when it has one, wins).
UNITS = {
    "probabilities": "probability",
    "probs": "probability",
    "top_probs": "probability",
    "target_probs": "probability",
    "target_ranks": "rank (1 = top)",
    "logits": "logit",
    "patterns": "attention weight (0-1)",
    "induction": "head score (0-1)",
    "previous_token": "head score (0-1)",
    "duplicate_token": "head score (0-1)",
    "first_token": "head score (0-1)",
    "perplexity": "perplexity (exp of nats per token)",
    "perplexity_ratio": "× unsteered perplexity",
    "loss": "loss (nats)",
    "accuracy": "fraction correct",
    "comprehensiveness": "target units (AOPC)",
    "sufficiency": "target units (AOPC)",
    "fractions": "fraction of tokens",
    "n_evaluations": "model evaluations",
    "forward_rows": "model evaluations",
    "deletion": "target units",
    "insertion": "target units",
    "target_value": "target units",
    "directions": "residual-stream units",
    "distinct2": "fraction of distinct bigrams",
    "token_counts": "tokens",
    "mean_reward": "reward (reward-model units)",
    "reward_gain": "reward (reward-model units)",
    "reward_margin": "reward (reward-model units)",
    "reward_accuracy": "fraction correct",
    "train_accuracy": "fraction correct",
    "test_accuracy": "fraction correct",
    "per_group": "reward (reward-model units)",
    "kl_bounds": "nats",
    "perplexity_under_base": "perplexity",
    "relative_change": "fraction of the norm",
    "cosine_with_steering": "cosine (-1 to 1)",
    "losses": "loss (nats)",
}


# Fields that say what was run (already in the run's settings), not what it found.
SETTINGS_FIELDS = frozenset(
    {"seed", "settings", "n_sequences", "repeat_length", "layer", "layers", "coefficient", "coefficients", "d_model", "line",
     "total", "ns", "fractions", "step"}
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One number a run found: what it is, its value, and its unit."""

    name: str
    value: float
    unit: str
    where: str = ""  # the position of an array's largest value, in the result's own labels ("L1.H0", "␣Mary")


def summary_rows(result: Any) -> list[SummaryRow]:
    """The main numbers of a result with units: each scalar, and each array's largest value and where it is.

    Example:
        >>> [(r.name, r.unit) for r in summary_rows(next_token_predictions(model, "I love"))][:1]
        [('P(␣you)', 'probability')]
    """
    rows: list[SummaryRow] = []
    _summarise(result, "", rows)
    return rows


def named_numbers(result: Any) -> dict[str, np.ndarray]:
    """Every number of a result keyed by its path ("activation.values", "runs.0.attribution.scores").

    Token ids, timings and settings are left out: they say what was run, not what it found.
    """
    found: dict[str, np.ndarray] = {}
    _walk(result, "", found, {})
    return found


def tokens_by_part(result: Any) -> dict[str, tuple[str, ...]]:
    """The prompt tokens of each part of a result that has them, keyed like :func:`named_numbers` ("" for the whole)."""
    found: dict[str, tuple[str, ...]] = {}
    _walk(result, "", {}, found)
    return found


def unit_of(result: Any, field: str) -> str:
    """The unit of one field of a result: the metric's label for metric scores, else by the field's name."""
    metric = getattr(result, "metric_label", None)
    if field in ("values", "raw_values") and hasattr(result, "direction"):  # patching
        return "fraction of the clean metric recovered" if field == "values" else str(metric)
    if field in ("changes", "metric_full", "metric_ablated", "metric_clean", "metric_corrupted", "metric", "heads", "mlps",
                 "attn_biases", "embeddings", "bias") and metric:  # fmt: skip
        return str(metric)
    if field in ("scores", "target_value", "base_value", "convergence_delta", "deletion", "insertion") and hasattr(
        result, "target"
    ):
        kind = getattr(getattr(result, "target", None), "kind", "")
        return "logit difference" if kind == "contrast" else "log-probability"
    if field in ("behaviour", "mean_behaviour", "mean_reward", "reward") and getattr(result, "scorer", None):
        return f"{result.scorer} score"
    return UNITS.get(field, "")


def _skipped(name: str) -> bool:
    return name.endswith(("seconds", "ids", "_id")) or name in SETTINGS_FIELDS


def _walk(value: Any, path: str, numbers: dict[str, np.ndarray], tokens: dict[str, tuple[str, ...]]) -> None:
    if isinstance(value, Bundle):
        for key, part in value.parts.items():
            _walk(part, f"{path}.{key}" if path else str(key), numbers, tokens)
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        own_tokens = getattr(value, "prompt_tokens", None) or getattr(value, "tokens", None)
        if isinstance(own_tokens, tuple) and own_tokens and all(isinstance(t, str) for t in own_tokens):
            tokens[path] = own_tokens
        for field in dataclasses.fields(value):
            if not _skipped(field.name) and field.name != "tokens":
                _walk(getattr(value, field.name), f"{path}.{field.name}" if path else field.name, numbers, tokens)
        return
    array = _as_numbers(value)
    if array is not None:
        numbers[path] = array
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}" if path else str(index), numbers, tokens)


def _as_numbers(value: Any) -> np.ndarray | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.floating | np.integer):
        return np.asarray(float(value))
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.size:
        return value.astype(np.float64)
    if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return np.asarray(value, dtype=np.float64)
    return None


def _summarise(result: Any, prefix: str, rows: list[SummaryRow]) -> None:
    if isinstance(result, Bundle):
        for key, part in result.parts.items():
            _summarise(part, f"{prefix}{key}: ", rows)
        return
    if isinstance(result, list | tuple) and result and all(dataclasses.is_dataclass(item) for item in result):
        if all(hasattr(item, "loss") for item in result):  # a training log: where it ended
            last = result[-1]
            _summarise(last, f"{prefix}last step: ", rows)
            return
        for index, item in enumerate(result[:MAX_ROWS_PER_PART]):
            _summarise(item, f"{prefix}{getattr(item, 'method', index)}: ", rows)
        return
    if not (dataclasses.is_dataclass(result) and not isinstance(result, type)):
        array = _as_numbers(result)
        if array is not None and array.ndim == 0:
            rows.append(SummaryRow(prefix.rstrip(": ") or "value", float(array), ""))
        return
    start = len(rows)
    if hasattr(result, "probabilities") and hasattr(result, "tokens"):  # next-token predictions: the top few
        for token, p in list(zip(result.tokens, result.probabilities, strict=False))[:5]:
            rows.append(SummaryRow(f"{prefix}P({token})", float(p), "probability"))
        return
    for field in dataclasses.fields(result):
        name, value = field.name, getattr(result, field.name)
        if _skipped(name) or name == "tokens":
            continue
        array = _as_numbers(value)
        if array is None:
            if dataclasses.is_dataclass(value) or isinstance(value, list | tuple | Bundle):
                _summarise(value, f"{prefix}{name}: ", rows)
            continue
        unit = unit_of(result, name)
        if array.ndim == 0:
            rows.append(SummaryRow(f"{prefix}{name}", float(array), unit))
            continue
        finite = np.isfinite(array)
        if not finite.any():
            continue
        if name == "patterns":  # attention: the strongest off-first-token link says more than the sink
            array = array.copy()
            array[..., 0] = np.nan if array.shape[-1] > 1 else array[..., 0]
        index = np.unravel_index(int(np.nanargmax(np.abs(array))), array.shape)
        rows.append(SummaryRow(f"{prefix}{name}: largest |value|", float(array[index]), unit, _where(result, name, index)))
        rows.append(SummaryRow(f"{prefix}{name}: mean", float(np.nanmean(array)), unit))
    del rows[start + MAX_ROWS_PER_PART :]


def _where(result: Any, name: str, index: tuple[int, ...]) -> str:
    """An array cell in the result's own labels: "L1.H0", "L2 at ␣Mary", or plain indices."""
    rows, columns = getattr(result, "row_labels", None), getattr(result, "column_labels", None)
    if len(index) == 2 and rows and columns and index[0] < len(rows) and index[1] < len(columns):
        return f"{rows[index[0]]} × {columns[index[1]]}"
    tokens = getattr(result, "tokens", None) or ()
    if name == "patterns" and len(index) == 4:
        query, key = (tokens[i] if i < len(tokens) else str(i) for i in index[2:])
        return f"L{index[0]}.H{index[1]}: {query} → {key}"
    layers = getattr(result, "layer_labels", None)
    if layers and len(index) >= 2 and index[0] < len(layers):
        position = tokens[index[1]] if index[1] < len(tokens) else str(index[1])
        return f"{layers[index[0]]} at {position}"
    if len(index) == 2 and name in ("heads", "changes", "induction", "previous_token", "duplicate_token", "first_token"):
        return f"L{index[0]}.H{index[1]}"
    if len(index) == 1 and tokens and len(tokens) > index[0]:
        return f"position {index[0]} ({tokens[index[0]]})"
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def summary_table(result: Any) -> list[dict[str, str]]:
    """The summary as table rows of text (what, value, unit, where): for a page's dataframe or a report."""
    return [
        {"what": r.name, "value": f"{r.value:.4g}", "unit": r.unit or "-", "where": r.where or "-"} for r in summary_rows(result)
    ]
