"""Batch jobs fanned out over Ray workers, with the same result as the in-process run.

A batch (the rows of an attribution file, the prompts of a steering evaluation, the cells of a sweep) is
split into chunks; each Ray worker loads the model itself from the same model spec (a checkpoint folder,
a ``.gguf`` file, a cached hub id, or None for the embedded SmolLM2) and runs chunks one after another.
Only specs and small data travel to the workers, never a model, and results come back as the same frozen
dataclasses the in-process run returns, gathered in input order.

Why the results are equal: every item carries its own seed (a sample's seed is fixed by its place in the
batch, not by the worker that draws it), and a chunk is cut where the in-process run cuts its own batches,
so each forward pass sees the same rows and the same padding. Each worker checks that it loaded the weights
the caller holds (their SHA-256), so a cluster node with another checkpoint under the same path fails
loudly instead of answering differently.

Where Ray runs: ``"auto"`` calls ``ray.init()``, which joins the cluster named by ``RAY_ADDRESS``, else a Ray
started on this machine with ``ray start --head``, else starts a local Ray for this job (stopped again when the
job ends); any other text is a cluster address (``ray://head:10001`` or ``head:6379``). A Ray already started
in this process (a notebook, a test) is used as it is and left running.

Example:
    >>> with RayWorkers(ModelSource("models/tiny"), address="auto") as workers:
    ...     totals = workers.map(count_tokens, [["a b", "c"], ["d e f"]])
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from interp.errors import InputError, SteerscopeError
from interp.loading import LoadedModel

if TYPE_CHECKING:
    from interp.attribution_batch import BatchAttribution, BatchItem, BatchResult

RAY_AUTO = "auto"
RAY_HELP = (
    "fan the batch out over Ray workers: 'auto' (RAY_ADDRESS, else a Ray started here by `ray start`, else a new "
    "local one) or a cluster address such as ray://head:10001; without it the batch runs in this process"
)

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")
ChunkDone = Callable[[int, int, int, Any], None]  # (chunks done, chunks in all, index of this chunk, its result)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """What a worker needs to load the caller's model: the spec given to ``load_model`` and the expected weights.

    ``spec`` is made absolute when it names a local path, since a worker's working folder is not the caller's.
    """

    spec: str | None
    device: str = "auto"
    weights_sha256: str = ""  # empty: not checked

    @classmethod
    def of(cls, spec: str | os.PathLike[str] | None, model: LoadedModel | None = None, device: str = "auto") -> ModelSource:
        text = None if spec is None else str(spec)
        if text is not None and Path(text).expanduser().exists():
            text = str(Path(text).expanduser().resolve())
        return cls(text, device, model.info.weights_sha256 if model is not None else "")


def check_ray_address(address: str) -> str:
    """``address`` as given, once it is a usable ``--ray`` value (``auto`` or one host address, no spaces)."""
    text = address.strip() if isinstance(address, str) else ""
    if not text or any(c.isspace() for c in text):
        raise InputError(f"--ray takes 'auto' or a cluster address such as ray://head:10001, not {address!r}.")
    return text


def connect_ray(address: str) -> bool:
    """Start or join Ray; True when this call started it (so the caller shuts it down again)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        # A local Ray needs no dashboard; workers' own output stays in Ray's log folder, errors still come back.
        # Its GCS and raylet still listen on every interface: Ray 2.58 has no option for loopback only
        # (_node_ip_address="127.0.0.1" is turned into the machine's address), see docs/SERVING.md "Scale out on Ray".
        ray.init(address=None if address == RAY_AUTO else address, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, ValueError or RuntimeError depending on the address
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(
            f"Cannot reach Ray at {address!r} ({first}). Start a cluster with `ray start --head` and give its address "
            "(ray://HOST:10001), or use --ray auto."
        ) from None
    return True


def _unwrapped(exc: BaseException) -> BaseException:
    """A worker's own error (a SteerscopeError with its message) instead of Ray's wrapper with a remote traceback."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, SteerscopeError) else exc


class _ModelWorker:
    """One Ray actor: loads the model once, then runs chunks with it."""

    def __init__(self, source: ModelSource, threads: int) -> None:
        import torch

        # Ray gives each actor its CPUs; torch would otherwise start one thread per core of the machine, and
        # two workers on two cores would each run two threads and wait on each other.
        torch.set_num_threads(threads)
        self.source = source
        self.model: LoadedModel | None = None

    def load(self) -> str:
        from interp.loading import load_model

        self.model = load_model(self.source.spec, device=self.source.device)
        found = self.model.info.weights_sha256
        if self.source.weights_sha256 and found != self.source.weights_sha256:
            raise InputError(
                f"A Ray worker loaded different weights from {self.source.spec or 'the embedded model'} "
                f"(SHA-256 {found[:12]}… instead of {self.source.weights_sha256[:12]}…): every node needs the same "
                "checkpoint at the same path."
            )
        return found

    def run(self, work: Callable[[LoadedModel, Any], Any], chunk: Any) -> Any:
        assert self.model is not None, "load() runs first"
        return work(self.model, chunk)


class RayWorkers:
    """A pool of Ray workers holding the same model, used as a context manager (workers and a started Ray end with it).

    Args:
        source: the model every worker loads.
        address: ``"auto"`` or a cluster address (see the module's text).
        workers: how many; default one per CPU of the cluster divided by ``threads``, at most ``max_workers``.
        threads: torch threads (and Ray CPUs) per worker.
        max_workers: no more workers than there are chunks to run (callers pass their chunk count).
    """

    def __init__(
        self,
        source: ModelSource,
        *,
        address: str = RAY_AUTO,
        workers: int | None = None,
        threads: int = 1,
        max_workers: int | None = None,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.address = check_ray_address(address)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InputError(f"The number of Ray workers must be a whole number from 1, not {workers!r}.")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InputError(f"Threads per Ray worker must be a whole number from 1, not {threads!r}.")
        self.requested = workers
        self.threads = threads
        self.max_workers = max_workers
        self.say = on_message or (lambda text: None)
        self.actors: list[Any] = []
        self.started_ray = False

    def __enter__(self) -> RayWorkers:
        import ray

        self.started_ray = connect_ray(self.address)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            count = self.requested or max(1, cpus // self.threads)
            count = min(count, self.max_workers or count)
            actor = ray.remote(num_cpus=self.threads)(_ModelWorker)
            self.actors = [actor.remote(self.source, self.threads) for _ in range(count)]
            self.say(f"[ray] {count} worker(s) × {self.threads} thread(s) loading {self.source.spec or 'the embedded model'}")
            self._get([a.load.remote() for a in self.actors])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        import ray

        for handle in self.actors:
            ray.kill(handle)  # also ends a chunk still running after Ctrl-C or an error
        self.actors = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False

    @staticmethod
    def _get(refs: list[Any]) -> list[Any]:
        import ray

        try:
            return ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise _unwrapped(exc) from None

    def map(
        self,
        work: Callable[[LoadedModel, Chunk], Result],
        chunks: Sequence[Chunk],
        on_chunk: ChunkDone | None = None,
    ) -> list[Result]:
        """``[work(model, chunk) for chunk in chunks]`` on the workers, in input order.

        ``work`` must be a module-level function (Ray sends it by name). Each idle worker takes the next
        chunk; ``on_chunk`` hears of each as it finishes. On Ctrl-C or a failed chunk the chunks still out
        are cancelled and the error is raised here.
        """
        import ray

        results: list[Any] = [None] * len(chunks)
        pending = list(range(len(chunks)))[::-1]  # popped from the end: first chunk first
        running: dict[Any, tuple[int, Any]] = {}  # ref -> (chunk index, actor)

        def submit(actor: Any) -> None:
            if pending:
                index = pending.pop()
                running[actor.run.remote(work, chunks[index])] = (index, actor)

        try:
            for actor in self.actors:
                submit(actor)
            done = 0
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                index, actor = running.pop(ready[0])
                results[index] = self._get(ready)[0]
                done += 1
                submit(actor)
                if on_chunk is not None:
                    on_chunk(done, len(chunks), index, results[index])
        except BaseException:
            for ref in running:
                ray.cancel(ref)
            raise
        return results


def progress_line(started: float, done: int, total: int, what: str = "chunks") -> str:
    """``3 of 8 chunks · 12 s elapsed · about 20 s left`` for a progress line."""
    elapsed = time.perf_counter() - started
    left = "" if done == 0 else f" · about {elapsed / done * (total - done):.0f} s left"
    return f"{done} of {total} {what} · {elapsed:.0f} s elapsed{left}"


# -- attribution over a file of prompts ----------------------------------------------------------


def _attribute_rows(model: LoadedModel, spec: BatchAttribution) -> tuple[BatchItem, ...]:
    """One chunk of an attribution batch: the spec restricted to some rows, run as in-process."""
    return spec.run(model).items


def attribute_on_ray(
    spec: BatchAttribution,
    source: ModelSource,
    *,
    address: str = RAY_AUTO,
    workers: int | None = None,
    rows_per_chunk: int = 1,
    progress: Callable[[float, str], None] | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> BatchResult:
    """A :class:`~interp.attribution_batch.BatchAttribution` run on Ray workers: the same ``BatchResult`` as ``spec.run``.

    Each chunk is ``rows_per_chunk`` rows with every method (each attribution call already has its own seed,
    ``spec.seed``, and runs one prompt, so cutting between rows changes nothing). ``on_item`` gets the items of
    each finished chunk, chunks in the order they finish.
    """
    from interp.attribution_batch import BatchResult

    if isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int) or rows_per_chunk < 1:
        raise InputError(f"Rows per chunk must be a whole number from 1, not {rows_per_chunk!r}.")
    parts = [
        dataclasses.replace(spec, rows=spec.rows[first : first + rows_per_chunk])
        for first in range(0, len(spec.rows), rows_per_chunk)
    ]
    received: list[BatchItem] = []
    with RayWorkers(source, address=address, workers=workers, max_workers=len(parts), on_message=on_message) as pool:
        started = time.perf_counter()  # after the workers loaded the model, so the time left is the batch's

        def finished(done: int, total: int, index: int, items: tuple[BatchItem, ...]) -> None:
            received.extend(items)
            for item in items:
                if on_item is not None:
                    on_item(item)
            if progress is not None:
                progress(len(received) / spec.total, progress_line(started, len(received), spec.total, "runs"))

        chunks = pool.map(_attribute_rows, parts, finished)
    return BatchResult(tuple(item for items in chunks for item in items), spec.total, False)
