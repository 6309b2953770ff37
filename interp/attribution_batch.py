"""Attribution over a file of prompts: progress with an ETA, stoppable, partial results kept.

The page and the command line (``python -m interp attribute``) both build a :class:`BatchAttribution`
and run it, so the same rows, methods, settings and seed give the same numbers. The rows live in the
spec, so a kept batch replays without its file.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from interp.attribution import (
    DEFAULT_BUDGET,
    METHODS,
    Attribution,
    AttributionMethod,
    Target,
    attribute,
    faithfulness,
    method_of,
)
from interp.errors import InputError, SteerscopeError
from interp.loading import LoadedModel
from interp.prompt_files import PromptFile, PromptRow
from interp.runs.spec import Progress, RunSpec, StopCheck, check_count, default_of


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    done: int
    total: int
    elapsed: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def eta_seconds(self) -> float | None:
        return None if self.done == 0 else self.elapsed / self.done * (self.total - self.done)

    def describe(self) -> str:
        eta = self.eta_seconds
        remaining = "estimating time left" if eta is None else f"about {eta:.0f} s left"
        return f"{self.done} of {self.total} runs · {self.elapsed:.0f} s elapsed · {remaining}"


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One prompt explained by one method (or the error that stopped it)."""

    line: int
    method: str
    attribution: Attribution | None
    comprehensiveness: float | None = None
    sufficiency: float | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class BatchResult:
    items: tuple[BatchItem, ...]
    total: int
    stopped: bool

    @property
    def completed(self) -> list[BatchItem]:
        return [item for item in self.items if item.attribution is not None]


def target_for(row: PromptRow) -> Target:
    if row.continuation:
        return Target.continuation(row.continuation)
    return Target.next_token(row.target)


def run_attribution_batch(
    model: LoadedModel,
    prompts: PromptFile | Sequence[PromptRow],
    methods: Sequence[str | AttributionMethod],
    *,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    with_faithfulness: bool = True,
    on_item: Callable[[BatchItem], None] | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    should_stop: StopCheck | None = None,
) -> BatchResult:
    """Explain every prompt with every method (names take the method's default options).

    Args:
        on_item: Called with each finished item as soon as it is done (callers keep partial results).
        on_progress: Called after each item with counts and an ETA.
        should_stop: Polled between items; True stops the batch, keeping what is done.
    """
    rows = prompts.rows if isinstance(prompts, PromptFile) else tuple(prompts)
    chosen = [method_of(method) for method in methods]
    jobs = [(row, method) for row in rows for method in chosen]
    items: list[BatchItem] = []
    start = time.perf_counter()
    stopped = False
    for row, method in jobs:
        if should_stop is not None and should_stop():
            stopped = True
            break
        try:
            result = attribute(model, row.prompt, target_for(row), method, budget=budget, seed=seed)
            curves = faithfulness(model, result) if with_faithfulness else None
            item = BatchItem(
                row.line,
                method.name,
                result,
                comprehensiveness=curves.comprehensiveness if curves else None,
                sufficiency=curves.sufficiency if curves else None,
            )
        except SteerscopeError as exc:
            item = BatchItem(row.line, method.name, None, error=str(exc))
        items.append(item)
        if on_item is not None:
            on_item(item)
        if on_progress is not None:
            on_progress(BatchProgress(len(items), len(jobs), time.perf_counter() - start))
    return BatchResult(tuple(items), len(jobs), stopped)


@dataclasses.dataclass(frozen=True)
class BatchAttribution(RunSpec):
    """Every prompt row explained by every method, each with its faithfulness check (unless turned off).

    A row that fails (a target of several tokens, over budget) is kept as an item with its error; the
    batch goes on.
    """

    kind: ClassVar[str] = "attribution_batch"
    title: ClassVar[str] = "Attribution over a file of prompts"
    mirrors = (run_attribution_batch,)

    rows: tuple[PromptRow, ...]
    methods: tuple[AttributionMethod, ...]
    budget: int = default_of(run_attribution_batch, "budget")
    seed: int = default_of(run_attribution_batch, "seed")
    with_faithfulness: bool = default_of(run_attribution_batch, "with_faithfulness")

    def __post_init__(self) -> None:
        if not self.rows:
            raise InputError("There are no prompts to explain; the file has no usable row.")
        if isinstance(self.methods, str | AttributionMethod) or not self.methods:
            raise InputError("Choose at least one attribution method.")
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "methods", tuple(method_of(m) for m in self.methods))
        check_count("budget (model evaluations per run)", self.budget)
        check_count("seed", self.seed, low=0)

    @property
    def total(self) -> int:
        return len(self.rows) * len(self.methods)

    def run(
        self,
        model: LoadedModel,
        progress: Progress | None = None,
        *,
        should_stop: StopCheck | None = None,
        on_item: Callable[[BatchItem], None] | None = None,
    ) -> BatchResult:
        """Run the batch; ``should_stop`` is polled between items and ``on_item`` gets each one as it is done."""
        return run_attribution_batch(
            model,
            self.rows,
            self.methods,
            budget=self.budget,
            seed=self.seed,
            with_faithfulness=self.with_faithfulness,
            on_item=on_item,
            on_progress=None if progress is None else lambda p: progress(p.fraction, p.describe()),
            should_stop=should_stop,
        )


def batch_frame(items: Sequence[BatchItem], top_k: int = 3) -> pd.DataFrame:
    """One row per (prompt, method): target, its value, top tokens, all scores, faithfulness, cost."""
    records = []
    for item in items:
        a = item.attribution
        if a is None:
            records.append({"line": item.line, "method": METHODS[item.method].title, "error": item.error})
            continue
        records.append(
            {
                "line": item.line,
                "prompt": a.prompt if isinstance(a.prompt, str) else " ".join(map(str, a.prompt)),
                "method": a.title,
                "target": a.target.label,
                "target_value": round(a.target_value, 6),
                "top_tokens": "; ".join(f"{tok} ({score:+.3f})" for _, tok, score in a.top_tokens(top_k)),
                "tokens": json.dumps(list(a.tokens), ensure_ascii=False),
                "scores": json.dumps([round(float(s), 6) for s in a.scores]),
                "comprehensiveness": None if item.comprehensiveness is None else round(item.comprehensiveness, 6),
                "sufficiency": None if item.sufficiency is None else round(item.sufficiency, 6),
                "evaluations": a.n_evaluations,
                "seconds": round(a.seconds, 3),
                "error": None,
            }
        )
    return pd.DataFrame.from_records(records)


def batch_json(items: Sequence[BatchItem]) -> str:
    """The batch as JSON: every attribution with its tokens, scores, target and settings."""
    out = []
    for item in items:
        a = item.attribution
        entry: dict[str, Any] = {"line": item.line, "method": item.method, "error": item.error}
        if a is not None:
            entry.update(
                prompt=a.prompt if isinstance(a.prompt, str) else list(a.prompt),
                target=a.target.label,
                target_value=a.target_value,
                base_value=a.base_value,
                convergence_delta=a.convergence_delta,
                tokens=list(a.tokens),
                token_ids=list(a.token_ids),
                scores=[float(s) for s in a.scores],
                settings=a.settings,
                evaluations=a.n_evaluations,
                seconds=a.seconds,
                comprehensiveness=item.comprehensiveness,
                sufficiency=item.sufficiency,
            )
        out.append(entry)
    return json.dumps(out, ensure_ascii=False, indent=1)


def driving_tokens(items: Sequence[BatchItem], top_k: int = 3) -> pd.DataFrame:
    """Tokens that most often drive the target: how often each is in a prompt's top ``k``, per method."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for item in items:
        if item.attribution is None:
            continue
        for _, token, score in item.attribution.top_tokens(top_k):
            key = (item.attribution.title, token.strip("␣") or token)
            counts[key] += 1
            totals[key] += score
    frame = pd.DataFrame(
        [{"method": m, "token": t, "times_in_top": n, "mean_score": totals[(m, t)] / n} for (m, t), n in counts.items()]
    )
    if frame.empty:
        return frame
    return frame.sort_values(["method", "times_in_top", "mean_score"], ascending=[True, False, False]).reset_index(drop=True)


def mean_faithfulness(items: Sequence[BatchItem]) -> pd.DataFrame:
    """Per method: mean comprehensiveness and sufficiency over the batch, evaluations and time."""
    rows = defaultdict(list)
    for item in items:
        if item.attribution is not None:
            rows[item.attribution.title].append(item)
    return pd.DataFrame(
        [
            {
                "method": title,
                "prompts": len(group),
                "comprehensiveness (mean)": float(
                    np.mean([i.comprehensiveness for i in group if i.comprehensiveness is not None] or [np.nan])
                ),
                "sufficiency (mean)": float(np.mean([i.sufficiency for i in group if i.sufficiency is not None] or [np.nan])),
                "evaluations (mean)": float(np.mean([i.attribution.n_evaluations for i in group])),
                "seconds (mean)": float(np.mean([i.attribution.seconds for i in group])),
            }
            for title, group in rows.items()
        ]
    )
