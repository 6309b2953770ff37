"""Runs as values: the spec base class, the registry of run kinds, and the shared setting checks (from interp.validation)."""

from interp.runs.registry import run_kinds, run_packages, spec_class
from interp.runs.spec import Bundle, Progress, RunSpec, StopCheck, default_of
from interp.validation import check_choice, check_count, check_finite

__all__ = [
    "Bundle",
    "Progress",
    "RunSpec",
    "StopCheck",
    "check_choice",
    "check_count",
    "check_finite",
    "default_of",
    "run_kinds",
    "run_packages",
    "spec_class",
]
