"""What a caller hands the engine, and what it gets back: a generation request and its stream.

A request is frozen and carries everything its rows need — the prompt's token ids, how many samples, how to sample
them, and its own interventions (:class:`RowAddition`: a vector added at one hook point, to this request's rows
only). The engine answers with a :class:`GenerationStream`: tokens arrive on it as they are produced, it can be
cancelled, and it ends with one :class:`~interp.generation.Generation` per sample.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from typing import Literal

import torch

from interp.errors import InputError
from interp.generation import Generation, SamplingSettings
from interp.hooks import HookFn
from interp.validation import check_count

AdditionPositions = Literal["all", "prompt", "generated"]


@dataclasses.dataclass(frozen=True, eq=False)
class RowAddition:
    """Add ``delta`` (``[d_model]``) to activation ``hook_name`` of one request's rows, at ``positions``.

    ``"prompt"``: the prompt's forward pass only; ``"generated"``: every decode step; ``"all"``: both. A steering
    vector at coefficient c is ``RowAddition(vector.hook_name(layer), c * vector.direction(layer))``.
    """

    hook_name: str
    delta: torch.Tensor
    positions: AdditionPositions = "all"

    def __post_init__(self) -> None:
        if self.positions not in ("all", "prompt", "generated"):
            raise InputError(f"Unknown positions {self.positions!r}; choose from all, prompt, generated.")
        if self.delta.ndim != 1:
            raise InputError(f"An addition is one vector of d_model numbers (got shape {tuple(self.delta.shape)}).")
        if not bool(torch.isfinite(self.delta).all()):
            raise InputError(f"The addition at {self.hook_name} has NaN or infinite entries.")

    def applies_to(self, stage: Literal["prompt", "generated"]) -> bool:
        return self.positions in ("all", stage)


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """``n_samples`` continuations of one tokenised prompt; sample ``i`` is seeded ``seed + i`` (as
    :func:`interp.generation.generate_batch` seeds them, so a request's text equals its solo run there)."""

    prompt: str
    prompt_ids: tuple[int, ...]
    max_new_tokens: int = 32
    n_samples: int = 1
    sampling: SamplingSettings = SamplingSettings()
    seed: int = 0
    stop_at_eos: bool = True
    additions: tuple[RowAddition, ...] = ()
    # Any other intervention: ``(hook name, fn(activation, site))`` as for interp.hooks.intervene, called with this
    # request's rows only and a site whose position_offset is their position (the prompt pass starts at 0).
    hooks: tuple[tuple[str, HookFn], ...] = ()
    label: str = "generation"  # what the engine's status line says it is running

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise InputError("The prompt has no tokens; type some text.")
        check_count("max_new_tokens", self.max_new_tokens)
        check_count("n_samples", self.n_samples)


FinishReason = Literal["eos", "length", "cancelled", "error"]


@dataclasses.dataclass(frozen=True)
class TokenEvent:
    """One token of one sample, as it is produced."""

    sample: int
    token_id: int
    text_so_far: str  # the sample's whole continuation decoded so far (decoding token by token splits characters)


_DONE = object()


class GenerationStream:
    """A request in flight. Iterate :meth:`events` for tokens as they come; :meth:`result` waits for the end.

    Thread-safe: the engine's thread writes, any caller's thread reads; :meth:`cancel` may be called from anywhere
    (the rows leave the batch at the next step boundary, the samples end with finish reason ``"cancelled"``).
    """

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.submitted = time.perf_counter()
        self._events: queue.Queue[object] = queue.Queue()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._generations: list[Generation] | None = None
        self._error: BaseException | None = None
        self.first_token_seconds: float | None = None  # from submission to the first token (what a user waits)

    # -- caller side --------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def events(self, timeout: float | None = None) -> Iterator[TokenEvent]:
        """Tokens as they are produced, until the request ends (raises its error, if it failed)."""
        while True:
            item = self._events.get(timeout=timeout)
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            assert isinstance(item, TokenEvent)
            yield item

    def result(self, timeout: float | None = None) -> list[Generation]:
        """One Generation per sample, in seed order; raises the request's error if it failed."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"The request did not finish within {timeout} s.")
        if self._error is not None:
            raise self._error
        assert self._generations is not None
        return self._generations

    # -- engine side --------------------------------------------------------------------------------------------
    def _emit(self, event: TokenEvent) -> None:
        if self.first_token_seconds is None:
            self.first_token_seconds = time.perf_counter() - self.submitted
        self._events.put(event)

    def _finish(self, generations: list[Generation]) -> None:
        self._generations = generations
        self._done.set()
        self._events.put(_DONE)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()
        self._events.put(_DONE)
