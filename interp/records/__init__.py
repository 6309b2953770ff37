"""Research-grade records: keep a run, replay it, compare two, export a report.

A kept run is its typed spec (:mod:`interp.runs`) with the result, the model's name and weights hash,
library versions, timestamps and a note. ``store`` keeps them in MLflow tracking, ``replay`` runs a
spec again and compares, ``compare`` diffs two runs, ``report`` exports a zip of Markdown/LaTeX/PNG.
"""

from interp.records.compare import RunComparison, compare_runs
from interp.records.record import RunRecord, data_folder, library_versions, new_record
from interp.records.replay import ReplayResult, numbers_of, replay
from interp.records.report import export_report, figure_png
from interp.records.store import RunStore, UnfinishedSave
from interp.runs.spec import Bundle

__all__ = [
    "Bundle",
    "ReplayResult",
    "RunComparison",
    "RunRecord",
    "RunStore",
    "UnfinishedSave",
    "compare_runs",
    "data_folder",
    "export_report",
    "figure_png",
    "library_versions",
    "new_record",
    "numbers_of",
    "replay",
]
