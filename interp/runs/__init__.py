"""Runs as values: the spec base class, the registry of run kinds, and shared setting checks."""

from interp.runs.registry import run_kinds, run_packages, spec_class
from interp.runs.spec import Bundle, Progress, RunSpec, StopCheck, check_choice, check_count, check_finite, default_of

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
