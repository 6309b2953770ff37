"""The wire shapes shared by the server's routes and its A/B experiments.

``SteeringItem`` is Steerscope's extension to the OpenAI request body: ``"steering": [{"vector": ..., ...}]``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SteeringItem(BaseModel):
    """One vector added to this request's rows: ``coefficient × direction`` at ``layers`` (all the vector's layers
    when omitted), at ``positions`` (``all``: prompt and generated tokens; ``prompt``; ``generated``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vector: str = Field(description="A name in the vector library (saved from the Steering page or uploaded).")
    coefficient: float = 1.0
    layers: tuple[int, ...] | None = None
    positions: Literal["all", "prompt", "generated"] = "all"

    @field_validator("coefficient")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("coefficient must be a finite number (not NaN or infinity)")
        return value
