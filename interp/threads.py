"""Compute on a thread that ends with the work, so the engine stays the only thread holding OpenMP workers.

Why: libgomp (the OpenMP runtime torch uses on this CPU) spin-waits between parallel regions only while the
process has no more OpenMP threads than cores; past that, its workers sleep after about 100 spins, and each of
the ~500 small parallel regions of a decode step pays a futex wake-up. A thread that computed once keeps its
OpenMP workers until it ends. Measured on 2 cores: a bf16 decode step took 24 ms on the only computing thread and
35 ms on the engine's thread while the main thread, which had loaded the model, kept its workers (~500 voluntary
context switches per step against ~2). Streamlit's script threads end after each run and its main thread never
computes; the server and the benchmark load the model through :func:`on_own_thread` so theirs never do either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def on_own_thread(work: Callable[[], T], *, name: str = "steerscope-work") -> T:
    """``work()`` run on a new thread that ends with it; its result, or its exception raised here."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as error:  # raised again in the caller's thread
            out["error"] = error

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
