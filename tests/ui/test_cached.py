"""The run cache every page shares: one computation per spec, bounded memory, failures not cached."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ui.cached import RunCache, array_bytes


def test_two_sessions_asking_at_once_compute_once():
    cache, calls = RunCache(), []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return np.arange(3)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("w", "k", "d"), slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)


def test_memory_is_bounded_by_bytes_oldest_first():
    cache = RunCache(max_entries=100, max_bytes=3 * 8_000)
    for i in range(5):
        cache.get(("w", "k", str(i)), lambda: np.zeros(1000))  # 8 kB each
    assert [("w", "k", str(i)) in cache for i in range(5)] == [False, False, True, True, True]


def test_a_failed_run_is_not_cached():
    cache = RunCache()

    def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        cache.get(("w", "k", "d"), broken)
    assert ("w", "k", "d") not in cache
    assert cache.get(("w", "k", "d"), lambda: 7) == 7


def test_array_bytes_walks_results():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Result:
        a: np.ndarray
        parts: tuple

    assert array_bytes(Result(np.zeros(10), (np.zeros(5), "x"))) == 120
