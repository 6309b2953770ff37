"""The OpenAI-compatible HTTP API over the engine, with per-request steering.

``create_app(model, settings)`` is a FastAPI app with OpenAI's routes (``/v1/models``, ``/v1/completions``,
``/v1/chat/completions``, streamed as server-sent events or not) plus Steerscope's: ``/v1/vectors`` (the vector
library: list, upload), ``/metrics`` (Prometheus), ``/v1/steerscope/recent`` and ``/health``. A request may carry
``"steering": [{"vector": "joy", "coefficient": 4, "layers": [3], "positions": "all"}]``: the named library
vectors become :class:`~interp.engine.RowAddition`\\ s on that request's rows only (:func:`steering.apply.
steering_additions`), so requests with different steering decode in one batch, and a request's text equals
``with steer(model, vector, 4, layers=[3]): generate(model, prompt, seed=...)`` in Python.

How a request flows: the body is checked (pydantic, then the model, limits, vectors), admitted against
``max_queue`` (429 when full), submitted to the engine, and its tokens are carried from the engine's thread to the
event loop by one small pump thread per prompt, so the loop never blocks. A client that disconnects cancels its
rows at the next step. Every error is OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with a
message that says what to fix; no traceback ever reaches the client.
"""

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from interp.engine import GenerationRequest, GenerationStream, RowAddition, TokenEvent, engine_for
from interp.errors import InputError, SteerscopeError
from interp.generation import SamplingSettings
from interp.loading import LoadedModel
from interp.tokens import tokenize
from serve.library import UnknownVector, VectorExists, VectorLibrary
from serve.metrics import RecentRequest, ServerMetrics
from serve.schema import MAX_PROMPTS, ChatBody, ChatMessage, CompletionBody, SteeringItem
from serve.settings import ServerSettings

log = logging.getLogger("steerscope.serve")

OPEN_ROUTES = ("/health",)  # answered without the API key (a load balancer's probe)
RETRY_AFTER_SECONDS = 1
DISCONNECT_POLL_SECONDS = 0.25
UPLOAD_ROUTE = "/v1/vectors"


# -- errors -------------------------------------------------------------------------------------------------------


class APIError(Exception):
    """An error answered in OpenAI's shape; ``message`` says what to fix."""

    TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 409: "invalid_request_error",
        413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
    }  # fmt: skip

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers or {}

    def body(self) -> dict[str, Any]:
        kind = self.TYPES.get(self.status, "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def _error_response(error: APIError):
    from fastapi.responses import JSONResponse

    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _input_error(error: SteerscopeError, param: str | None = None) -> APIError:
    if isinstance(error, UnknownVector):
        return APIError(404, str(error), param=param or "steering", code="vector_not_found")
    return APIError(400, str(error), param=param)


UPLOAD_HINT = (
    "Send the vector as multipart/form-data with a file field named file and a field named name "
    "(curl -F name=joy -F file=@joy.safetensors), or the file's raw bytes as the body with ?name=joy."
)
DETAIL_CHARS = 160


def shown_detail(detail: object) -> str:
    """A framework's error detail as it may be shown: one line, printable, at most DETAIL_CHARS, HTML-escaped (it can
    quote the request, and a page may show the message)."""
    import html

    text = " ".join(str(detail if detail is not None else "").split())
    text = html.escape("".join(c if c.isprintable() else "?" for c in text), quote=False)
    if len(text) > DETAIL_CHARS:
        text = text[: DETAIL_CHARS - 1] + "…"
    return text.rstrip(".")


def parse_flag(value: object, param: str) -> bool:
    """A yes/no query or form field (``true``/``false``, ``1``/``0``); absent is False."""
    text = "" if value is None else str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("", "false", "0", "no", "off"):
        return False
    raise APIError(400, f"{param} must be true or false (got {shown_detail(str(value)[:20])!r}).", param=param)


_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|tuple\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|.*\[.*\])$", re.I)
FIELD_HINTS = {
    "frequency_penalty": "frequency_penalty is not supported by this server; leave it out (or 0).",
    "presence_penalty": "presence_penalty is not supported by this server; leave it out (or 0).",
    "logprobs": "logprobs are not supported by this server; leave the field out.",
    "echo": "echo is not supported by this server; leave it out (or false).",
    "temperature": "temperature must be a number from 0 (greedy) to 2.",
    "top_p": "top_p must be a number in (0, 1].",
    "max_tokens": "max_tokens must be a whole number from 1.",
    "n": "n (choices per prompt) must be a whole number from 1.",
}


def _field_path(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not _TYPE_TAG.match(part):
            path += ("." if path else "") + part[:40]
    return path


def _allowed_fields(path: str, route: str) -> list[str]:
    from serve.schema import ContentPart, StreamOptions

    if "steering[" in path:
        return list(SteeringItem.model_fields)
    if "messages[" in path:
        return list(ContentPart.model_fields) if ".content" in path else list(ChatMessage.model_fields)
    if path.startswith("stream_options"):
        return list(StreamOptions.model_fields)
    return list((ChatBody if route.endswith("chat/completions") else CompletionBody).model_fields)


def validation_error(errors: Sequence[dict[str, Any]], route: str, content_type: str = "application/json") -> APIError:
    """One OpenAI-shaped error from pydantic's list: which field, what is wrong with it, what it may be."""
    if any(error.get("type") == "json_invalid" for error in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        where = f" ({str(detail)[:80]})" if detail else ""
        return APIError(400, f"The request body is not valid JSON{where}. Send one JSON object.", code="invalid_json")
    messages, params = [], []
    for error in errors:
        path, kind = _field_path(error.get("loc", ())), error.get("type", "")
        leaf = path.rsplit(".", 1)[-1].split("[")[0] if path else ""
        if not path and "json" not in content_type.lower():
            text = "Send the body as JSON, with the header Content-Type: application/json."
        elif not path:
            text = "The request body must be a JSON object with the request's fields."
        elif kind == "extra_forbidden":
            parent = path.rsplit(".", 1)[0] if "." in path else "the request"
            text = f"Unknown field {leaf!r} in {parent}; allowed: {', '.join(_allowed_fields(path, route))}."
        elif kind == "missing":
            text = f"{path} is required."
        elif leaf in FIELD_HINTS and "[" not in path:
            text = FIELD_HINTS[leaf]
        else:
            message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
            text = f"{path}: {message}."
        if text not in messages:
            messages.append(text)
            params.append(path or None)
    shown = " ".join(messages[:3]) + (f" (and {len(messages) - 3} more problems)" if len(messages) > 3 else "")
    return APIError(422, shown, param=params[0] if params else None, code="invalid_value")


# -- admission ------------------------------------------------------------------------------------------------------


class Admission:
    """At most ``limit`` generation requests in flight (waiting in the engine or decoding); one more is a 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def admit(self) -> "Ticket":
        with self._lock:
            if self._count >= self.limit:
                raise APIError(
                    429, f"The server is busy: {self._count} requests are in flight (the limit is {self.limit}). "
                    f"Retry after {RETRY_AFTER_SECONDS} s.", code="queue_full", headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )  # fmt: skip
            self._count += 1
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._count -= 1


class Ticket:
    """One admitted request; released once (when its engine work has ended, however it ended)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._admission._release()


# -- a request in flight ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Sample:
    """One choice's text as it streams: what has been sent, held back until it cannot change or end in a stop."""

    stops: tuple[str, ...]
    sent: str = ""
    tokens: int = 0
    finish: str | None = None
    last_token: float | None = None

    def _cut(self, text: str) -> tuple[str, bool]:
        found = [i for i in (text.find(stop) for stop in self.stops) if i >= 0]
        return (text[: min(found)], True) if found else (text, False)

    def _advance(self, text: str) -> str:
        if not text.startswith(self.sent):
            return ""  # decoding changed what was already sent (rare, at a character split): hold until it settles
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def update(self, text_so_far: str) -> str:
        text, stopped = self._cut(text_so_far)
        if stopped:
            self.finish = "stop"
            return self._advance(text)
        stable = text.rstrip("\ufffd")  # a character split over tokens decodes as U+FFFD until its last byte comes
        hold = max((k for stop in self.stops for k in range(1, len(stop)) if stable.endswith(stop[:k])), default=0)
        return self._advance(stable[: len(stable) - hold])

    def end(self, text: str, reason: str) -> str:
        text, stopped = self._cut(text)
        self.finish = "stop" if stopped or reason in ("eos", "cancelled") else "length"
        return self._advance(text)


class _Flight:
    """The engine streams of one HTTP request, bridged onto the event loop."""

    _TOKEN, _END, _FAIL = "token", "end", "fail"

    def __init__(self, loop: asyncio.AbstractEventLoop, streams: list[GenerationStream], n: int, stops: tuple[str, ...],
                 ticket: Ticket, metrics: ServerMetrics) -> None:  # fmt: skip
        self.streams, self.n, self.metrics = streams, n, metrics
        self.samples = [_Sample(stops) for _ in range(len(streams) * n)]
        self.started = time.perf_counter()
        self._queue: asyncio.Queue[tuple[str, int, Any, float]] = asyncio.Queue()
        self._loop = loop
        self._ticket = ticket
        self._running = len(streams)
        self._lock = threading.Lock()
        self.recorded = False  # its outcome is in the metrics (once, however the response ended)
        for k, stream in enumerate(streams):
            threading.Thread(target=self._pump, args=(k, stream), name="steerscope-serve-pump", daemon=True).start()

    def _put(self, item: tuple[str, int, Any, float]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has shut down: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _pump(self, k: int, stream: GenerationStream) -> None:
        try:
            for event in stream.events():
                self._put((self._TOKEN, k, event, time.perf_counter()))
            self._put((self._END, k, None, time.perf_counter()))
        except BaseException as error:  # the request's own failure, answered to its client
            self._put((self._FAIL, k, error, time.perf_counter()))
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._ticket.release()

    def cancel(self) -> None:
        for stream in self.streams:
            stream.cancel()

    @property
    def first_token_seconds(self) -> float | None:
        times = [s.first_token_seconds for s in self.streams if s.first_token_seconds is not None]
        return min(times) if times else None

    @property
    def completion_tokens(self) -> int:
        return sum(sample.tokens for sample in self.samples)

    async def deltas(self) -> AsyncIterator[tuple[int, str, str | None]]:
        """``(choice, new text, finish reason or None)`` as tokens arrive; each choice ends with one finish reason."""
        ended = 0
        while ended < len(self.streams):
            kind, k, payload, at = await self._queue.get()
            if kind == self._FAIL:
                raise payload
            if kind == self._TOKEN:
                event: TokenEvent = payload
                index = k * self.n + event.sample
                sample = self.samples[index]
                if sample.finish is not None:
                    continue
                sample.tokens += 1
                gap = [at - sample.last_token] if sample.last_token is not None else []
                sample.last_token = at
                self.metrics.tokens_arrived(1, gap)
                delta = sample.update(event.text_so_far)
                if delta or sample.finish:
                    yield index, delta, sample.finish
                if all(s.finish for s in self.samples[k * self.n : (k + 1) * self.n]):
                    self.streams[k].cancel()  # every sample hit a stop string: free the rows now
                continue
            ended += 1
            generations = self.streams[k].result(timeout=0)
            if len(generations) != self.n:
                raise InputError("The engine stopped before this request finished; try again.")
            for i, generation in enumerate(generations):
                sample = self.samples[k * self.n + i]
                if sample.finish is not None:
                    continue
                if generation.finish_reason == "error":
                    raise InputError("Generation failed for this request; the server log has details.")
                sample.tokens = max(sample.tokens, len(generation.token_ids))
                delta = sample.end(generation.text, generation.finish_reason)
                yield k * self.n + i, delta, sample.finish


# -- the app --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A checked request: what to submit, and what the response says about it."""

    route: str
    requests: tuple[GenerationRequest, ...]
    n: int
    stops: tuple[str, ...]
    vectors: tuple[str, ...]
    prompt_tokens: int
    prompt_text: str
    experiment: str | None = None
    arm: str | None = None
    user: str | None = None


def chat_prompt_ids(model: LoadedModel, messages: Sequence[ChatMessage]) -> tuple[str, list[int]]:
    """The chat as the model's chat template writes it, ending where the assistant's turn starts.

    One user message gives exactly ``tokenize(model, text, chat=True)`` (what ``generate(..., chat=True)`` reads);
    a model without a template reads a single user message as plain text, as interp does, and a longer chat as
    ``role: text`` lines.
    """
    turns = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in messages]
    for turn in turns:
        if "\x00" in turn["content"]:
            raise InputError("A message contains a NUL character; remove it.")
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"], tokenize(model, turns[0]["content"], chat=True)
    text = "\n".join(f"{t['role']}: {t['content']}" for t in turns)
    if getattr(model.tokenizer, "chat_template", None):
        ids = model.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        return text, tokenize(model, ids)
    return text, tokenize(model, text + "\nassistant:")


def create_app(model: LoadedModel, settings: ServerSettings, *, library: VectorLibrary | None = None, experiments=None):
    """The FastAPI app serving ``model`` (see the module's docstring). ``experiments``: an ``ExperimentBook``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    library = library if library is not None else VectorLibrary(max_upload_bytes=settings.max_upload_bytes)
    metrics = ServerMetrics()
    admission = Admission(settings.max_queue)
    served = model.info.name
    app = FastAPI(title="Steerscope", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics, app.state.admission, app.state.library, app.state.settings = metrics, admission, library, settings
    app.add_middleware(_Guard, settings=settings, metrics=metrics)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError):
        return _error_response(error)

    @app.exception_handler(SteerscopeError)
    async def _steerscope_error(request: Request, error: SteerscopeError):
        return _error_response(_input_error(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        errors = error.errors()
        return _error_response(validation_error(errors, request.url.path, request.headers.get("content-type", "")))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException):
        if error.status_code == 404:
            message = (
                f"No route {request.method} {request.url.path[:80]}; this server has /v1/models, /v1/completions, "
                "/v1/chat/completions, /v1/vectors, /metrics."
            )
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path[:80]}."
        else:  # e.g. Starlette's 400 for a malformed multipart body: say what it found and what to send
            detail = shown_detail(error.detail)
            hint = UPLOAD_HINT if request.url.path == UPLOAD_ROUTE else "Check the request against docs/SERVING.md."
            message = f"The request could not be read{f' ({detail})' if detail else ''}. {hint}"
        code = None if error.status_code in (404, 405) else "unreadable_request"
        body = APIError(error.status_code, message, code=code).body()
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return _error_response(
            APIError(500, "The server failed on this request; its log has the details. Try again.", code="internal_error")
        )

    # -- checking a request ---------------------------------------------------------------------------------------

    def check_model(name: str) -> None:
        if name != served:
            raise APIError(404, f"This server serves {served!r}, not {name[:80]!r}. Set model to {served!r} (GET /v1/models).",
                           param="model", code="model_not_found")  # fmt: skip

    def additions_for(items: Sequence[SteeringItem]) -> tuple[RowAddition, ...]:
        from steering.apply import steering_additions

        additions: list[RowAddition] = []
        for i, item in enumerate(items):
            param = f"steering[{i}]"
            try:
                vector = library.get(item.vector, model)
                if item.layers is not None:
                    outside = [layer for layer in item.layers if not 0 <= layer < model.info.n_layers]
                    if outside:
                        raise InputError(
                            f"Layer(s) {outside} do not exist in {served}, which has layers 0..{model.info.n_layers - 1}."
                        )
                    missing = [layer for layer in item.layers if layer not in vector.layers]
                    if missing:
                        raise InputError(
                            f"Vector {item.vector!r} has no direction at layer(s) {missing}; it covers {list(vector.layers)}."
                        )
                additions.extend(
                    steering_additions(model, vector, item.coefficient, layers=item.layers, positions=item.positions)
                )
            except SteerscopeError as error:
                raise _input_error(error, param) from None
        return tuple(additions)

    def plan(body: CompletionBody | ChatBody, route: str) -> tuple[_Plan, Any]:
        check_model(body.model)
        max_tokens = body.max_completion_tokens if isinstance(body, ChatBody) and body.max_completion_tokens else body.max_tokens
        max_tokens = max_tokens or settings.default_max_tokens
        if max_tokens > settings.max_tokens:
            raise APIError(400, f"max_tokens is {max_tokens}; this server generates at most {settings.max_tokens} per request.",
                           param="max_tokens", code="max_tokens_too_large")  # fmt: skip
        if body.n > settings.max_n:
            raise APIError(400, f"n is {body.n}; this server gives at most {settings.max_n} choices per request.", param="n")
        items: tuple[SteeringItem, ...] = tuple(body.steering or ())
        arm = None
        if body.experiment is not None:
            if body.steering:
                raise APIError(400, "An experiment's arm sets the steering: send experiment or steering, not both.",
                               param="steering", code="experiment_and_steering")  # fmt: skip
            if experiments is None:
                raise APIError(400, "This server runs no experiments; leave out experiment.", param="experiment")
            if body.n != 1 or (isinstance(body, CompletionBody) and isinstance(body.prompt, list) and len(body.prompt) != 1):
                raise APIError(400, "A request in an experiment gets one choice for one prompt (n = 1).", param="n")
            try:
                arm = experiments.assign(body.experiment, body.user)
            except SteerscopeError as error:
                raise APIError(400, str(error), param="experiment") from None
            items = tuple(arm.steering)
        additions = additions_for(items)
        try:
            sampling = SamplingSettings(temperature=float(body.temperature), top_p=float(body.top_p))
        except InputError as error:
            raise APIError(400, str(error), param="temperature") from None
        seed = body.seed if body.seed is not None else (random.randrange(2**31) if body.temperature > 0 else 0)
        if isinstance(body, ChatBody):
            prompts = [chat_prompt_ids(model, body.messages)]
            param = "messages"
        else:
            texts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
            if len(texts) > MAX_PROMPTS:
                raise APIError(400, f"{len(texts)} prompts in one request; send at most {MAX_PROMPTS}.", param="prompt")
            prompts = [(text, tokenize(model, text)) for text in texts]
            param = "prompt"
        n_ctx = model.info.n_ctx
        for _, ids in prompts:
            if len(ids) + max_tokens > n_ctx:
                room = n_ctx - max_tokens
                raise APIError(400, f"The prompt is {len(ids)} tokens and max_tokens is {max_tokens}; {served} reads at most "
                               f"{n_ctx} tokens in all, so shorten the prompt to {max(room, 0)} tokens or lower max_tokens.",
                               param=param, code="context_length_exceeded")  # fmt: skip
        label = f"API {route.removeprefix('/v1/')}" + (f" · {', '.join(dict.fromkeys(i.vector for i in items))}" if items else "")
        requests = tuple(
            GenerationRequest(text, tuple(ids), max_new_tokens=max_tokens, n_samples=body.n, sampling=sampling,
                              seed=seed + j * body.n, stop_at_eos=not body.ignore_eos, additions=additions, label=label)
            for j, (text, ids) in enumerate(prompts)
        )  # fmt: skip
        shown = prompts[0][0] if isinstance(body, CompletionBody) else body.messages[-1].text()
        return _Plan(route=route, requests=requests, n=body.n, stops=body.stops(), vectors=tuple(i.vector for i in items),
                     prompt_tokens=sum(len(ids) for _, ids in prompts), prompt_text=shown,
                     experiment=body.experiment, arm=arm.name if arm is not None else None, user=body.user), arm  # fmt: skip

    def start(the_plan: _Plan) -> _Flight:
        ticket = admission.admit()
        engine = engine_for(model)
        streams: list[GenerationStream] = []
        try:
            for request in the_plan.requests:
                streams.append(engine.submit(request))
        except BaseException:
            for stream in streams:
                stream.cancel()  # the submitted ones leave at the next step; nobody waits for them
            ticket.release()
            raise
        metrics.used_vectors(list(the_plan.vectors))
        return _Flight(asyncio.get_running_loop(), streams, the_plan.n, the_plan.stops, ticket, metrics)

    def finished(the_plan: _Plan, flight: _Flight, status: int) -> None:
        if flight.recorded:
            return
        flight.recorded = True
        metrics.finished(RecentRequest(
            time=time.time(), route=the_plan.route, model=served, vectors=tuple(dict.fromkeys(the_plan.vectors)),
            tokens=flight.completion_tokens, ttft_seconds=flight.first_token_seconds,
            seconds=time.perf_counter() - flight.started, status=status, experiment=the_plan.experiment, arm=the_plan.arm,
        ))  # fmt: skip

    async def record(the_plan: _Plan, response_id: str, text: str) -> None:
        if the_plan.experiment is None or experiments is None:
            return
        import anyio

        try:
            await anyio.to_thread.run_sync(lambda: experiments.record_response(
                experiment=the_plan.experiment, arm=the_plan.arm, response_id=response_id, user=the_plan.user,
                prompt=the_plan.prompt_text, text=text,
            ))  # fmt: skip
        except Exception:  # the response still reaches its caller; the experiment misses one row
            log.exception("recording the response in experiment %s failed", the_plan.experiment)

    def extension(the_plan: _Plan, response_id: str) -> dict[str, Any]:
        if the_plan.experiment is None:
            return {}
        return {"steerscope": {"experiment": the_plan.experiment, "arm": the_plan.arm, "response_id": response_id}}

    def usage(the_plan: _Plan, flight: _Flight) -> dict[str, int]:
        completion = flight.completion_tokens
        return {
            "prompt_tokens": the_plan.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": the_plan.prompt_tokens + completion,
        }

    async def collect(request: Request, the_plan: _Plan, flight: _Flight) -> list[str]:
        texts = [""] * len(flight.samples)
        deltas = flight.deltas()
        try:
            while True:
                step = asyncio.ensure_future(deltas.__anext__())
                while not step.done():
                    await asyncio.wait([step], timeout=DISCONNECT_POLL_SECONDS)
                    if not step.done() and await request.is_disconnected():
                        step.cancel()
                        flight.cancel()
                        finished(the_plan, flight, 499)
                        raise asyncio.CancelledError
                try:
                    index, delta, _ = step.result()
                except StopAsyncIteration:
                    break
                texts[index] += delta
        except SteerscopeError as error:
            flight.cancel()
            finished(the_plan, flight, 400)
            raise _input_error(error) from None
        except Exception:
            flight.cancel()
            finished(the_plan, flight, 500)
            raise
        finally:
            with contextlib.suppress(Exception):
                await deltas.aclose()
        finished(the_plan, flight, 200)
        return texts

    class FlightResponse(StreamingResponse):
        """A stream whose engine request ends with the response, however it ends: a client that leaves before the
        first byte means the body's generator never starts, so its own ``finally`` cannot cancel the rows."""

        def __init__(self, content, *, ended, **options) -> None:
            super().__init__(content, **options)
            self._ended = ended

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._ended()

    def ended_early(the_plan: _Plan, flight: _Flight) -> None:
        flight.cancel()  # a no-op for rows that already ended
        finished(the_plan, flight, 499)  # a no-op when the stream already recorded how it ended

    def sse(data: dict[str, Any] | str) -> str:
        return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"

    async def stream_events(
        the_plan: _Plan, flight: _Flight, response_id: str, chat: bool, include_usage: bool
    ) -> AsyncIterator[str]:
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": response_id, "object": kind, "created": created, "model": served}
        extra = extension(the_plan, response_id)
        text0, status = "", 500
        try:
            if chat:
                for index in range(len(flight.samples)):
                    first = {
                        **head,
                        "choices": [
                            {
                                "index": index,
                                "delta": {"role": "assistant", "content": ""},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                    yield sse({**first, **extra} if index == 0 else first)
            elif extra:
                yield sse({**head, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": None}], **extra})
            async for index, delta, reason in flight.deltas():
                if index == 0:
                    text0 += delta
                if chat:
                    choice = {
                        "index": index,
                        "delta": {"content": delta} if delta else {},
                        "logprobs": None,
                        "finish_reason": reason,
                    }
                else:
                    choice = {"text": delta, "index": index, "logprobs": None, "finish_reason": reason}
                yield sse({**head, "choices": [choice]})
            if include_usage:
                yield sse({**head, "choices": [], "usage": usage(the_plan, flight)})
            await record(the_plan, response_id, text0)
            status = 200
            finished(the_plan, flight, status)  # before [DONE]: a client that reads the metrics next sees this request
            yield sse("[DONE]")
        except SteerscopeError as error:
            status = 400
            yield sse(_input_error(error).body())
        except Exception:
            log.exception("stream failed")
            yield sse(APIError(500, "Generation failed on the server; its log has the details. Try again.").body())
        except BaseException:  # the client went away (cancelled): its rows leave the batch at the next step
            status = 499
            raise
        finally:
            flight.cancel()
            finished(the_plan, flight, status)

    async def generation_route(request: Request, body: CompletionBody | ChatBody, route: str):
        chat = isinstance(body, ChatBody)
        the_plan, _ = plan(body, route)
        flight = start(the_plan)
        response_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return FlightResponse(
                stream_events(the_plan, flight, response_id, chat, include_usage), ended=lambda: ended_early(the_plan, flight),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )  # fmt: skip
        texts = await collect(request, the_plan, flight)
        await record(the_plan, response_id, texts[0])
        reasons = [sample.finish or "length" for sample in flight.samples]
        if chat:
            choices = [
                {"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": reasons[i]}
                for i, text in enumerate(texts)
            ]
        else:
            choices = [{"text": text, "index": i, "logprobs": None, "finish_reason": reasons[i]} for i, text in enumerate(texts)]
        return {
            "id": response_id, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": served, "choices": choices, "usage": usage(the_plan, flight), "system_fingerprint": None,
            **extension(the_plan, response_id),
        }  # fmt: skip

    # -- routes ---------------------------------------------------------------------------------------------------

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": served, "engine": engine_for(model).status().describe(), "pid": os.getpid()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0, "owned_by": "steerscope"}]}

    @app.post("/v1/completions")
    async def completions(request: Request, body: CompletionBody):
        return await generation_route(request, body, "/v1/completions")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: ChatBody):
        return await generation_route(request, body, "/v1/chat/completions")

    @app.get("/v1/vectors")
    async def list_vectors():
        return {"object": "list", "data": [entry.as_json() for entry in library.list()]}

    @app.post("/v1/vectors")
    async def upload_vector(request: Request):
        import anyio

        name, file_name = request.query_params.get("name"), None
        overwrite = request.query_params.get("overwrite")
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=4)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise APIError(400, f"No file in the form. {UPLOAD_HINT}", param="file")
            name = form.get("name") if isinstance(form.get("name"), str) else name
            overwrite = form.get("overwrite") if isinstance(form.get("overwrite"), str) else overwrite
            file_name = upload.filename
            data = await upload.read()
        else:
            data = await request.body()
        if not name:
            raise APIError(400, "Give the vector a name: a form field name, or ?name=... with a raw body.", param="name")
        replace = parse_flag(overwrite, "overwrite")
        if not data:
            raise APIError(400, "The upload is empty; send the .safetensors or .gguf file's bytes.", param="file")
        try:
            entry = await anyio.to_thread.run_sync(
                lambda: library.upload(name, data, model, file_name=file_name, overwrite=replace)
            )
        except VectorExists:
            raise APIError(
                409, f"A vector named {name!r} is already in the library. To replace it, send overwrite=true (a form field, "
                "or ?overwrite=true with a raw body); to keep it, choose another name.", param="name", code="vector_exists",
            ) from None  # fmt: skip
        except SteerscopeError as error:
            raise APIError(400, str(error), param="file") from None
        return entry.as_json()

    @app.get("/metrics")
    async def prometheus_metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        status = engine_for(model).status()
        body = metrics.exposition(queued=status.queued, rows=status.rows, in_flight=admission.count)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/steerscope/recent")
    async def recent():
        return {"object": "list", "data": [entry.as_json() for entry in metrics.recent()]}

    if experiments is not None:
        from serve.experiments import experiments_router

        app.include_router(experiments_router(experiments))
    return app


# -- the guard: API key, body size, and every answer counted ------------------------------------------------------------


class _Guard:
    """ASGI middleware in front of every route: the API key (401), the body limit (413, before anything parses the
    body), and the metrics' request and error counts by route and status."""

    def __init__(self, app, *, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        self._key = settings.api_key.encode() if settings.api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status_seen: list[int] = []

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(int(message["status"]))
                self.metrics.answered(path, status_seen[0])  # counted before the client can read the answer
            await send(message)

        try:
            error = self._refusal(scope, path)
            if error is not None:
                await _send_error(counted_send, error)
                return
            limit = self.settings.max_upload_bytes + 65_536 if path == UPLOAD_ROUTE else self.settings.max_body_bytes
            body, too_large = await _read_body(receive, limit)
            if too_large:
                await _send_error(counted_send, _too_large(limit, path))
                return
            await self.app(scope, _replay(body, receive), counted_send)
        except Exception:  # past every handler: answer it here, in the API's shape, and keep serving
            log.exception("unhandled error on %s", path)
            if not status_seen:
                error = APIError(500, "The server failed on this request; its log has the details.", code="internal_error")
                await _send_error(counted_send, error)
        finally:
            if not status_seen:
                self.metrics.answered(path, 499)  # the client left before any answer

    def _refusal(self, scope, path: str) -> APIError | None:
        headers = dict(scope.get("headers") or [])
        if self._key is not None and path not in OPEN_ROUTES:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if not given:
                return APIError(
                    401, "This server needs an API key: send the header Authorization: Bearer <key>.", code="missing_api_key"
                )
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._key):
                return APIError(
                    401, "The API key is not right: send Authorization: Bearer <the server's key>.", code="invalid_api_key"
                )
        length = headers.get(b"content-length")
        if length is not None:
            limit = self.settings.max_upload_bytes + 65_536 if path == UPLOAD_ROUTE else self.settings.max_body_bytes
            try:
                if int(length) > limit:
                    return _too_large(limit, path)
            except ValueError:
                return APIError(400, "The Content-Length header is not a number.")
        return None


def _too_large(limit: int, path: str) -> APIError:
    what = "a vector upload" if path == UPLOAD_ROUTE else "a request body"
    return APIError(
        413, f"The body is larger than this server takes for {what} ({limit:,} bytes); send less.", code="body_too_large"
    )


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, up to ``limit`` bytes; (what was read, True) as soon as it passes the limit."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False  # the client left; the route will see the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replayed


async def _send_error(send, error: APIError) -> None:
    payload = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
