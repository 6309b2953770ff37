"""The shared model's lock: one forward pass at a time, interactive work first, long jobs never starved.

Every run takes the model's lock through :func:`interp.hooks.intervene`, so a job is a sequence of short holds
(a patching sweep holds it for one batch of patched runs, a sweep for one decode step on the engine). A plain
lock lets whichever thread wakes first win, so a sweep's next chunk could keep beating an interactive decode step
and a slider move waited seconds. This lock instead gives turns by kind:

* the engine's thread (and anything inside :func:`interactive`) goes first while a job waits, until it has used
  :data:`INTERACTIVE_SHARE` of the time since the job's last turn;
* then the waiting job takes one turn (one hold), and the count starts again.

So while both want the model an interactive generation gets at least three quarters of it (slowed by at most
1 / 0.75 ≈ 1.33x, plus the one chunk already running when it arrived), and a sweep still moves on.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

INTERACTIVE_SHARE = 0.75
INTERACTIVE_GRACE = 0.05  # seconds a job waits after an interactive step before taking a turn it is not due

_interactive: contextvars.ContextVar[bool] = contextvars.ContextVar("steerscope_interactive", default=False)


@contextlib.contextmanager
def interactive() -> Iterator[None]:
    """Mark what this thread runs as interactive (someone is watching it happen): it goes first for the model."""
    token = _interactive.set(True)
    try:
        yield
    finally:
        _interactive.reset(token)


class ModelLock:
    """A reentrant lock with the turn-taking above; ``acquire``/``release`` like :class:`threading.RLock`."""

    def __init__(self, share: float = INTERACTIVE_SHARE) -> None:
        self._ratio = share / (1.0 - share)  # interactive seconds per job second
        self._condition = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._owner_interactive = False
        self._held_since = 0.0
        self._waiting = {True: 0, False: 0}
        self._interactive_seconds = 0.0  # interactive hold time since the last job turn
        self._job_seconds = 0.0  # how long the last job turn held the lock
        self._interactive_released = float("-inf")  # when interactive work last let go

    def _may_take(self, kind: bool, now: float) -> bool:
        if self._owner is not None:
            return False
        jobs_due = self._interactive_seconds >= self._ratio * self._job_seconds
        if kind:  # interactive: first, unless a waiting job is due a turn
            return not (self._waiting[False] and jobs_due)
        if jobs_due:
            return True
        # Not due: only while no interactive work wants the model, and not in the moment between two of its steps
        # (the engine releases after a step and asks again a few milliseconds later, after choosing tokens).
        return not self._waiting[True] and now - self._interactive_released >= INTERACTIVE_GRACE

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        kind = _interactive.get()
        deadline = None if timeout < 0 else time.monotonic() + timeout
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return True
            self._waiting[kind] += 1
            try:
                while not self._may_take(kind, time.monotonic()):
                    now = time.monotonic()
                    if not blocking or (deadline is not None and now >= deadline):
                        self._condition.notify_all()  # a waiter that gave up can change who is due
                        return False
                    wait = None if deadline is None else deadline - now
                    if not kind:  # look again when the grace after the last interactive step is over
                        grace_left = self._interactive_released + INTERACTIVE_GRACE - now
                        if grace_left > 0:
                            wait = grace_left if wait is None else min(wait, grace_left)
                    self._condition.wait(wait)
            finally:
                self._waiting[kind] -= 1
            self._owner, self._depth, self._owner_interactive = me, 1, kind
            self._held_since = time.monotonic()
            return True

    def release(self) -> None:
        with self._condition:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a model lock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            held = time.monotonic() - self._held_since
            if self._owner_interactive:
                self._interactive_seconds += held
                self._interactive_released = time.monotonic()
            else:
                self._job_seconds, self._interactive_seconds = held, 0.0
            self._owner = None
            self._condition.notify_all()

    def __enter__(self) -> ModelLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
