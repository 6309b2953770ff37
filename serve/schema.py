"""The wire shapes shared by the server's routes and its A/B experiments.

``SteeringItem`` is Steerscope's extension to the OpenAI request body: ``"steering": [{"vector": ..., ...}]``.
The request bodies (:class:`CompletionBody`, :class:`ChatBody`) take the OpenAI fields the engine can honour;
fields it cannot (penalties, logprobs) are accepted only at their no-op values, so a client is never silently
given something other than what it asked for.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PROMPTS = 16  # prompts in one completions request (a list of strings)
MAX_STEERING_ITEMS = 8
MAX_MESSAGES = 256


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_usage: bool = False


class _GenerationBody(BaseModel):
    """The fields completions and chat share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**62)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    # Accepted at their no-op values only (the engine has no penalties): anything else is a clear 400.
    frequency_penalty: float = Field(default=0.0, ge=0.0, le=0.0)
    presence_penalty: float = Field(default=0.0, ge=0.0, le=0.0)
    # Steerscope's extensions
    steering: list[SteeringItem] | None = Field(default=None, max_length=MAX_STEERING_ITEMS)
    experiment: str | None = Field(default=None, max_length=128)
    ignore_eos: bool = False  # generate exactly max_tokens tokens (as vLLM's field of that name)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings of at most 64 characters")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class CompletionBody(_GenerationBody):
    """``POST /v1/completions``."""

    prompt: str | list[str] = Field(min_length=1)
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for completions
    echo: Literal[False] = False  # not supported
    logprobs: None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["text"]
    text: str


class ChatBody(_GenerationBody):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: Literal[False] | None = None


ChatMessage.model_rebuild()
