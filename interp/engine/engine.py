"""The engine: one thread that owns a shared model's generation and interleaves every caller's work.

Why: the app hands one model to every browser session, and a model runs one forward pass at a time. Run per
caller, eight people steering wait for each other in turn and one long sweep freezes everyone. The engine instead
keeps one batch of rows decoding — from every request in flight, each with its own interventions — and makes one
forward pass per step for all of them (continuous batching: requests join at step boundaries, finished or
cancelled rows leave). Between steps it runs one chunk of a long job (an analysis written as a generator that
yields after each chunk), so no job holds the model for longer than a chunk and interactive text keeps flowing.

Guarantees (tested in ``tests/interp/test_engine.py``):

* a request's samples equal its solo run through :func:`interp.generation.generate_batch` — greedy token for
  token, sampled with the same seeds — whatever shares the batch (padding changes nothing beyond float rounding);
* a request that fails (a bad hook name, a prompt too long) fails alone: its neighbours finish as if it never came;
* no hook is left on the model after any step, failed or not (each step goes through :func:`interp.hooks.intervene`);
* cancelling a request removes its rows at the next step boundary.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import torch
from transformers import DynamicCache

from interp.engine.batch import Row, forward, keep_rows, merge_caches
from interp.engine.requests import GenerationRequest, GenerationStream, TokenEvent
from interp.errors import InputError
from interp.generation import Generation, choose_tokens
from interp.loading import LoadedModel
from interp.model_lock import interactive
from interp.tokens import baseline_token_id, check_length, pad_rows

log = logging.getLogger(__name__)

MAX_ROWS = 32  # rows decoding together; more requests wait in the queue (measured: 16 rows ~6x one row's tokens/s)

JobWork = Generator[float, None, Any]  # yields its progress (0..1) after each chunk, returns the result


@dataclasses.dataclass(frozen=True)
class EngineStatus:
    """What the engine is doing now (the sidebar's status line)."""

    queued: int  # requests waiting to join the batch
    requests: tuple[str, ...]  # labels of the requests decoding now
    rows: int
    jobs: tuple[str, ...]  # labels of the long jobs taking turns
    steps: int  # forward passes made since the engine started

    def describe(self) -> str:
        if not self.requests and not self.jobs and not self.queued:
            return "Engine idle"
        parts = []
        if self.requests:
            n = len(self.requests)
            parts.append(f"{n} generation{'s' if n != 1 else ''} decoding ({self.rows} row{'s' if self.rows != 1 else ''})")
        if self.queued:
            parts.append(f"{self.queued} waiting")
        if self.jobs:
            parts.append("jobs: " + ", ".join(self.jobs))
        return " · ".join(parts)


class JobHandle:
    """A long job taking turns with generation; :meth:`result` waits for its return value."""

    def __init__(self, label: str, work: JobWork) -> None:
        self.label = label
        self._work = work
        self.progress = 0.0
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.label} did not finish within {timeout} s.")
        if self._error is not None:
            raise self._error
        return self._result

    def _turn(self) -> bool:
        """Run one chunk; True when the job has ended (finished, failed or cancelled)."""
        if self._cancelled.is_set():
            self._work.close()
            self._error = InputError(f"{self.label} was stopped.")
            self._done.set()
            return True
        try:
            self.progress = float(next(self._work))
            return False
        except StopIteration as stop:
            self._result, self.progress = stop.value, 1.0
        except Exception as error:  # the job's own failure, reported to its caller
            self._error = error
        self._done.set()
        return True


class Engine:
    """Runs every generation and long job on one model, from one thread (started on first use)."""

    def __init__(self, model: LoadedModel, *, max_rows: int = MAX_ROWS) -> None:
        self.model = model
        self.max_rows = max_rows
        self._pending: collections.deque[GenerationStream] = collections.deque()
        self._jobs: collections.deque[JobHandle] = collections.deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._steps = 0
        # The decoding batch (engine thread only)
        self._rows: list[Row] = []
        self._ended: dict[int, list[Row]] = {}  # rows that left, by stream, until all their request's rows have ended
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._positions = torch.zeros(0, dtype=torch.long)
        self._next = torch.zeros(0, dtype=torch.long)

    # -- callers ------------------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue ``request``; tokens start arriving on the returned stream at the next step boundary."""
        check_length(self.model, len(request.prompt_ids) + request.max_new_tokens, what="A prompt plus the tokens to generate")
        stream = GenerationStream(request)
        with self._wake:
            self._ensure_running()
            self._pending.append(stream)
            self._wake.notify()
        return stream

    def submit_job(self, label: str, work: JobWork) -> JobHandle:
        """Run ``work`` (a generator yielding its progress after each chunk of about a second) between decode steps."""
        job = JobHandle(label, work)
        with self._wake:
            self._ensure_running()
            self._jobs.append(job)
            self._wake.notify()
        return job

    def status(self) -> EngineStatus:
        with self._wake:
            rows = list(self._rows)
            return EngineStatus(
                queued=len(self._pending),
                requests=tuple(dict.fromkeys(r.stream.request.label for r in rows)),
                rows=len(rows),
                jobs=tuple(job.label for job in self._jobs),
                steps=self._steps,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; requests and jobs still waiting fail with a clear message."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the engine's thread ------------------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._closed:
            raise InputError("The engine was closed; load the model again.")
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"steerscope-engine-{self.model.info.name}", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        with interactive():  # what the engine decodes, someone is waiting for: it goes first for the model
            try:
                self._serve()
            finally:  # whatever ended the loop, nobody is left waiting on a request that will never finish
                self._abandon()

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._pending or self._rows or self._jobs):
                    self._wake.wait()
                if self._closed:
                    break
                joining = []
                while self._pending and len(self._rows) + sum(s.request.n_samples for s in joining) < self.max_rows:
                    joining.append(self._pending.popleft())
                job = self._jobs[0] if self._jobs else None
            try:
                if joining:
                    self._join(joining)
                if self._rows:
                    self._step()
            except Exception as error:  # a bug of the engine's own: the rows in flight fail, the engine goes on serving
                log.exception("engine step failed")
                self._fail_batch(error)
            if job is not None and job._turn():
                with self._wake:
                    self._jobs.remove(job)
            elif job is not None:
                with self._wake:
                    self._jobs.rotate(-1)  # the next job takes the next turn

    def _abandon(self) -> None:
        closed = InputError("The engine was closed before this request finished.")
        for row in self._rows:
            if not row.stream.done:
                row.stream._fail(closed)
        with self._wake:
            for stream in self._pending:
                stream._fail(closed)
            for job in self._jobs:
                job._error = closed
                job._done.set()

    def _join(self, streams: list[GenerationStream]) -> None:
        """Prefill the joining requests' prompts in one pass and merge their rows into the batch. If that pass fails,
        each request is tried alone, so only the one at fault fails."""
        for stream in [s for s in streams if s.cancelled]:
            stream._finish([])
        streams = [s for s in streams if not s.cancelled]
        alone = [s for s in streams if s.request.hooks]  # a hook sees its prompt as it is, unpadded: one pass each
        streams = [s for s in streams if not s.request.hooks]
        if len(streams) > 1:
            try:
                self._prefill(streams)
                return
            except Exception as error:
                log.info("a joint prompt pass failed (%s); trying each request alone", error)
        for stream in streams:
            try:
                self._prefill([stream])
            except Exception as error:  # this request's failure; the batch it would have joined is untouched
                log.info("request %r failed in its prompt pass: %s", stream.request.label, error)
                stream._fail(error)
        for stream in alone:
            try:
                self._prefill([stream])
            except Exception as error:
                log.info("request %r failed in its prompt pass: %s", stream.request.label, error)
                stream._fail(error)

    def _prefill(self, streams: list[GenerationStream]) -> None:
        """One forward pass of every prompt (left-padded), shared by each request's samples; the engine's state
        changes only once the pass has succeeded."""
        rows: list[Row] = []
        for stream in streams:
            request = stream.request
            for i in range(request.n_samples):
                generator = None
                if request.sampling.temperature > 0:
                    generator = torch.Generator(device=self.model.device)
                    generator.manual_seed(request.seed + i)
                rows.append(Row(stream, i, generator))
        padded = pad_rows([s.request.prompt_ids for s in streams], baseline_token_id(self.model), side="left")
        positions = (padded.mask.cumsum(-1) - 1).clamp(min=0)  # each prompt's own positions, from 0
        cache = DynamicCache(config=self.model.hf_model.config)
        firsts = [row for row in rows if row.sample == 0]
        failures: dict[int, BaseException] = {}
        logits = forward(self.model, firsts, "prompt", padded.tokens, cache, padded.mask, positions, failures)
        self._steps += 1
        if failures:
            raise next(iter(failures.values()))
        index = torch.tensor([j for j, s in enumerate(streams) for _ in range(s.request.n_samples)], dtype=torch.long)
        if len(index) > len(streams):
            cache.batch_select_indices(index)  # the samples of a request share its prompt's pass
        first = self._choose(rows, logits[index])
        mask = padded.mask[index]
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            self._cache, self._mask = merge_caches(self.model, self._cache, self._mask, cache, mask)
        self._rows.extend(rows)
        lengths = torch.tensor([len(s.request.prompt_ids) for s in streams], dtype=torch.long)[index]
        self._positions = torch.cat([self._positions, lengths])
        self._next = torch.cat([self._next, first])
        self._after_tokens(rows, first)

    def _choose(self, rows: list[Row], logits: torch.Tensor) -> torch.Tensor:
        """Each request's rows choose with their own settings and generators. A request whose choice fails (logits
        that are not numbers: its steering pushed the residual stream to infinity) ends alone with that message; its
        rows get a placeholder token and leave at the next boundary, so its batch neighbours go on."""
        chosen = torch.zeros(len(rows), dtype=torch.long)
        by_request: dict[int, list[int]] = collections.defaultdict(list)
        for i, row in enumerate(rows):
            by_request[id(row.stream)].append(i)
        for indices in by_request.values():
            stream = rows[indices[0]].stream
            settings = stream.request.sampling
            generators = [rows[i].generator for i in indices] if settings.temperature > 0 else []
            try:
                chosen[indices] = choose_tokens(logits[indices], settings, generators).cpu()  # NaN logits raise here
            except Exception as error:
                log.info("request %r failed choosing its tokens: %s", stream.request.label, error)
                for i in indices:
                    rows[i].finish_reason = "error"
                if not stream.done:
                    stream._fail(error)
        return chosen

    def _after_tokens(self, rows: list[Row], tokens: torch.Tensor) -> None:
        """Record and stream each row's new token; mark rows that end (eos, length, cancelled)."""
        eos = self.model.tokenizer.eos_token_id
        for row, token in zip(rows, tokens.tolist(), strict=True):
            if row.finish_reason is not None:  # failed while choosing: nothing more to stream
                continue
            request = row.stream.request
            row.token_ids.append(token)
            text = self.model.tokenizer.decode(row.token_ids, skip_special_tokens=True)
            row.stream._emit(TokenEvent(row.sample, token, text))
            if request.stop_at_eos and token == eos:
                row.finish_reason = "eos"
            elif len(row.token_ids) >= request.max_new_tokens:
                row.finish_reason = "length"

    def _step(self) -> None:
        """One decode step for every row still going, then the rows that ended leave."""
        for row in self._rows:
            if row.finish_reason is None and row.stream.cancelled:
                row.finish_reason = "cancelled"
        self._leave()
        if not self._rows:
            return
        self._mask = torch.cat([self._mask, torch.ones((len(self._rows), 1), dtype=torch.long)], dim=1)
        try:
            step_tokens, step_positions = self._next[:, None], self._positions[:, None]
            failures: dict[int, BaseException] = {}
            logits = forward(self.model, self._rows, "generated", step_tokens, self._cache, self._mask, step_positions, failures)
        except Exception as error:  # not one request's fault (each was checked when it joined): every row fails
            log.exception("decode step failed")
            self._fail_batch(error)
            return
        self._steps += 1
        self._positions = self._positions + 1
        self._next = self._choose(self._rows, logits)
        for row in self._rows:
            error = failures.get(id(row.stream))
            if error is not None:  # its own hook raised: it fails alone and its rows leave
                row.finish_reason = "error"
                if not row.stream.done:
                    row.stream._fail(error)
        going = [i for i, row in enumerate(self._rows) if row.finish_reason is None]
        self._after_tokens([self._rows[i] for i in going], self._next[going])
        self._leave()

    def _fail_batch(self, error: BaseException) -> None:
        """Every row in flight fails with ``error`` and the batch starts empty."""
        for row in self._rows:
            if not row.stream.done:
                row.stream._fail(error)
        self._ended.clear()
        self._rows, self._cache = [], None
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._positions, self._next = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)

    def _leave(self) -> None:
        """Rows that ended leave the batch; a request whose rows have all ended gets its Generations."""
        ended = [row for row in self._rows if row.finish_reason is not None]
        if not ended:
            return
        keep = [i for i, row in enumerate(self._rows) if row.finish_reason is None]
        for row in ended:  # a request's rows can end at different steps (one sample reaches eos first)
            self._ended.setdefault(id(row.stream), []).append(row)
        for stream in dict.fromkeys(row.stream for row in ended):
            mine = self._ended[id(stream)]
            if len(mine) == stream.request.n_samples:
                del self._ended[id(stream)]
                if not stream.done:
                    stream._finish([self._generation(row) for row in sorted(mine, key=lambda r: r.sample)])
        if not keep:
            self._rows, self._cache = [], None
            self._mask = torch.zeros((0, 0), dtype=torch.long)
            self._positions, self._next = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
            return
        index = torch.tensor(keep, dtype=torch.long)
        assert self._cache is not None
        self._mask = keep_rows(self._cache, self._mask, index)
        self._rows = [self._rows[i] for i in keep]
        self._positions, self._next = self._positions[index], self._next[index]

    def _generation(self, row: Row) -> Generation:
        request = row.stream.request
        return Generation(
            request.prompt,
            self.model.tokenizer.decode(row.token_ids, skip_special_tokens=True),
            tuple(row.token_ids),
            request.prompt_ids,
            None if request.sampling.temperature == 0 else request.seed + row.sample,
            row.finish_reason or "length",
            time.perf_counter() - row.stream.submitted,
        )


_engines: dict[int, Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    """Stop every engine's thread before the interpreter tears torch down (a thread still in a torch call then
    ends the process with "terminate called without an active exception")."""
    with _engines_lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.close(timeout=5.0)


def engine_for(model: LoadedModel) -> Engine:
    """The one engine of ``model`` (made on first use): every caller of this process shares it."""
    with _engines_lock:
        engine = _engines.get(id(model))
        if engine is None or engine.model is not model:
            engine = _engines[id(model)] = Engine(model)
        return engine


def request_for(
    model: LoadedModel, prompt: str, *, max_new_tokens: int = 40, temperature: float = 0.0, seed: int = 0,
    n_samples: int = 1, label: str = "generation",
) -> GenerationRequest:  # fmt: skip
    """A request to continue ``prompt`` (checked: text, counts, the model's context)."""
    from interp.generation import SamplingSettings
    from interp.tokens import tokenize
    from interp.validation import check_text

    check_text("prompt", prompt)
    ids = tokenize(model, prompt)
    check_length(model, len(ids) + max_new_tokens, what="A prompt plus the tokens to generate")
    return GenerationRequest(prompt, tuple(ids), max_new_tokens=max_new_tokens, n_samples=n_samples,
                             sampling=SamplingSettings(temperature), seed=seed, label=label)  # fmt: skip


def run_job(model: LoadedModel, label: str, work: Callable[[], JobWork], timeout: float | None = None) -> Any:
    """Run a chunked job on ``model``'s engine and wait for its result."""
    return engine_for(model).submit_job(label, work()).result(timeout)
