"""The model lock: reentrant, interactive work first while a job waits, and the job still gets its turns."""

from __future__ import annotations

import threading
import time

import pytest

from interp.model_lock import ModelLock, interactive


def test_it_is_reentrant_and_exclusive():
    lock = ModelLock()
    assert lock.acquire() and lock.acquire()
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(lock.acquire(blocking=False)))
    thread.start()
    thread.join()
    assert other == [False]
    lock.release()
    thread = threading.Thread(target=lambda: other.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    assert other == [False, False]  # still held once
    lock.release()
    thread = threading.Thread(target=lambda: (other.append(lock.acquire(timeout=1)), lock.release()))
    thread.start()
    thread.join()
    assert other[-1] is True


def test_only_the_holder_may_release():
    lock = ModelLock()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()


def test_interactive_steps_get_most_of_the_model_and_a_job_is_not_starved():
    lock = ModelLock()
    log: list[tuple[str, float]] = []  # (who, seconds held)
    stop = threading.Event()

    def hold(who: str, seconds: float) -> None:
        with lock:
            start = time.monotonic()
            time.sleep(seconds)
            log.append((who, time.monotonic() - start))

    def job() -> None:
        while not stop.is_set():
            hold("job", 0.04)  # a chunk of a sweep: long

    def steps() -> None:
        with interactive():
            for _ in range(40):
                hold("step", 0.01)  # decode steps: short, one after another ...
                time.sleep(0.003)  # ... with the engine's own work between them (choosing tokens), outside the lock

    background = threading.Thread(target=job)
    background.start()
    time.sleep(0.1)  # the job is running when the interactive work arrives
    first = len(log)
    steps_thread = threading.Thread(target=steps)
    steps_thread.start()
    steps_thread.join(30)
    stop.set()
    background.join(30)
    during = log[first:]
    last_step = max(i for i, (who, _) in enumerate(during) if who == "step")
    during = during[: last_step + 1]
    step_time = sum(s for who, s in during if who == "step")
    job_time = sum(s for who, s in during if who == "job")
    job_turns = sum(1 for who, _ in during if who == "job")
    assert job_turns >= 2, "the job must keep getting turns while interactive work runs"
    assert step_time / (step_time + job_time) >= 0.6, (step_time, job_time)  # the design share is 0.75
