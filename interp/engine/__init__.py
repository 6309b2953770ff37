"""One engine per shared model: continuously batched, streamed generation with per-request interventions, and
long jobs that take turns with it. See :mod:`interp.engine.engine`."""

from interp.engine.engine import Engine, EngineStatus, JobHandle, engine_for, request_for, run_job
from interp.engine.requests import GenerationRequest, GenerationStream, RowAddition, TokenEvent

__all__ = [
    "Engine",
    "EngineStatus",
    "GenerationRequest",
    "GenerationStream",
    "JobHandle",
    "RowAddition",
    "TokenEvent",
    "engine_for",
    "request_for",
    "run_job",
]
