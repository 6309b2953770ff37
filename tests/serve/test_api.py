"""The server through the official `openai` client: what it answers equals ``steer()`` + ``generate()`` in Python."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time

import httpx
import openai
import pytest
import torch

from interp import generate
from interp.engine import engine_for
from interp.generation import generate_samples
from interp.threads import on_own_thread
from serve.api import create_app
from serve.library import VectorLibrary
from serve.settings import ServerSettings
from steering.apply import steer
from tests.serve.conftest import random_vector, running

PROMPT = "I love dogs because"


def reference(model, library, prompt, *, steering=(), chat=False, **options) -> str:
    """The same generation in Python: the library's vectors applied with steer(), then generate()."""
    with contextlib.ExitStack() as stack:
        for item in steering:
            vector = library.get(item["vector"], model)
            stack.enter_context(
                steer(
                    model, vector, item.get("coefficient", 1.0), layers=item.get("layers"), positions=item.get("positions", "all")
                )
            )
        return generate(model, prompt, chat=chat, **options).text


def streamed_text(chunks, chat: bool) -> tuple[str, str | None]:
    text, reason = "", None
    for chunk in chunks:
        for choice in chunk.choices:
            text += (choice.delta.content or "") if chat else choice.text
            reason = choice.finish_reason or reason
    return text, reason


def test_models_lists_the_served_model(client, tiny_llama):
    assert [m.id for m in client.models.list().data] == [tiny_llama.info.name]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_completion_equals_generate(client, tiny_llama, vector_library, stream):
    want = reference(tiny_llama, vector_library, PROMPT, max_new_tokens=12)
    response = client.completions.create(model=tiny_llama.info.name, prompt=PROMPT, max_tokens=12, temperature=0, stream=stream)
    if stream:
        text, reason = streamed_text(response, chat=False)
    else:
        text, reason = response.choices[0].text, response.choices[0].finish_reason
        assert response.usage.prompt_tokens == len(tiny_llama.tokenizer(PROMPT).input_ids)
        assert response.usage.completion_tokens == len(generate(tiny_llama, PROMPT, max_new_tokens=12).token_ids)
    assert text == want
    assert reason in ("stop", "length")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_equals_generate_with_the_chat_template(client, tiny_llama, vector_library, stream):
    want = reference(tiny_llama, vector_library, "Tell me about dogs", chat=True, max_new_tokens=10, temperature=0.9, seed=7)
    response = client.chat.completions.create(
        model=tiny_llama.info.name, messages=[{"role": "user", "content": "Tell me about dogs"}], max_tokens=10,
        temperature=0.9, seed=7, stream=stream,
    )  # fmt: skip
    if stream:
        chunks = list(response)
        assert chunks[0].choices[0].delta.role == "assistant"
        text, _ = streamed_text(chunks, chat=True)
    else:
        text = response.choices[0].message.content
        assert response.choices[0].message.role == "assistant"
    assert text == want


STEERINGS = [
    [{"vector": "joy", "coefficient": 4.0}],
    [{"vector": "joy", "coefficient": -2.5, "layers": [1], "positions": "generated"}],
    [{"vector": "calm", "coefficient": 6.0, "positions": "prompt"}, {"vector": "joy", "coefficient": 1.5}],
]


@pytest.mark.parametrize("steering", STEERINGS, ids=["one", "layer-generated", "two-vectors"])
@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 0.8, "seed": 11}], ids=["greedy", "sampled"])
def test_steered_completion_equals_steer_and_generate(client, tiny_llama, vector_library, steering, sampling):
    want = reference(tiny_llama, vector_library, PROMPT, steering=steering, max_new_tokens=12, **sampling)
    unsteered = reference(tiny_llama, vector_library, PROMPT, max_new_tokens=12, **sampling)
    assert want != unsteered  # the vectors change this text, so equality below is about steering
    plain = client.completions.create(
        model=tiny_llama.info.name, prompt=PROMPT, max_tokens=12, extra_body={"steering": steering}, **sampling
    )
    assert plain.choices[0].text == want
    streamed = client.completions.create(
        model=tiny_llama.info.name, prompt=PROMPT, max_tokens=12, stream=True, extra_body={"steering": steering}, **sampling
    )
    assert streamed_text(streamed, chat=False)[0] == want


def test_steered_chat_stream_equals_steer_and_generate(client, tiny_llama, vector_library):
    steering = [{"vector": "joy", "coefficient": 3.0}]
    want = reference(tiny_llama, vector_library, "Hello there", steering=steering, chat=True, max_new_tokens=10, temperature=0.0)
    stream = client.chat.completions.create(
        model=tiny_llama.info.name, messages=[{"role": "user", "content": "Hello there"}], max_tokens=10, temperature=0,
        stream=True, extra_body={"steering": steering},
    )  # fmt: skip
    assert streamed_text(stream, chat=True)[0] == want


def test_n_choices_are_the_seeded_samples(client, tiny_llama):
    samples = generate_samples(tiny_llama, PROMPT, max_new_tokens=8, n_samples=3, temperature=1.0, seed=5)
    response = client.completions.create(model=tiny_llama.info.name, prompt=PROMPT, max_tokens=8, n=3, temperature=1.0, seed=5)
    assert [c.text for c in sorted(response.choices, key=lambda c: c.index)] == [s.text for s in samples]
    assert response.usage.completion_tokens == sum(len(s.token_ids) for s in samples)
    prompt_tokens = len(tiny_llama.tokenizer(PROMPT).input_ids)  # read once for all n choices, as OpenAI counts it
    assert response.usage.prompt_tokens == prompt_tokens
    assert response.usage.total_tokens == prompt_tokens + response.usage.completion_tokens


def test_stop_string_cuts_the_text_where_it_first_appears(client, tiny_llama):
    full = generate(tiny_llama, PROMPT, max_new_tokens=20, temperature=1.0, seed=3, stop_at_eos=False).text
    stop = full[6:8]  # a piece from inside the text: the answer must end right before its first occurrence
    want = full[: full.find(stop)]
    for stream in (False, True):
        response = client.completions.create(
            model=tiny_llama.info.name, prompt=PROMPT, max_tokens=20, temperature=1.0, seed=3, stop=stop, stream=stream,
            extra_body={"ignore_eos": True},
        )  # fmt: skip
        text, reason = (
            streamed_text(response, chat=False) if stream else (response.choices[0].text, response.choices[0].finish_reason)
        )
        assert (text, reason) == (want, "stop")


class EngineHold:
    """A job that holds the engine's thread twice: first until :meth:`let_join` (requests queue up meanwhile, then
    join the batch together), then again right after their first decode step, until :meth:`let_go`, so the test
    reads the batch while they are all in it. No timing: each wait is on an event."""

    def __init__(self, model) -> None:
        self.engine = engine_for(model)
        self._holding, self._in_batch = threading.Event(), threading.Event()
        self._join, self._go = threading.Event(), threading.Event()

        def work():
            self._holding.set()
            self._join.wait(60)
            yield 0.5  # the engine's next turn: the queued requests join and decode a step, then this job resumes
            self._in_batch.set()
            self._go.wait(60)
            yield 1.0

        self.job = self.engine.submit_job("test hold", work())
        assert self._holding.wait(60), "the engine did not start the holding job"

    def wait_queued(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while self.engine.status().queued < count:
            assert time.monotonic() < deadline, f"{count} requests did not reach the engine's queue"
            time.sleep(0.01)

    def let_join(self):
        """Release the queued requests into one batch; returns the engine's status while they are in it."""
        self._join.set()
        assert self._in_batch.wait(60), "the requests did not decode"
        return self.engine.status()

    def let_go(self) -> None:
        self._join.set()
        self._go.set()
        self.job.result(60)


def test_concurrent_requests_with_different_steering_share_a_batch_and_each_equal_their_solo_result(
    base_url, tiny_llama, vector_library
):
    jobs = [
        ([{"vector": "joy", "coefficient": 4.0}], {"temperature": 0.0}),
        ([{"vector": "calm", "coefficient": -5.0}], {"temperature": 0.7, "seed": 2}),
        ([], {"temperature": 0.7, "seed": 2}),
        ([{"vector": "joy", "coefficient": -3.0, "layers": [0]}], {"temperature": 0.0}),
    ]
    wants = [reference(tiny_llama, vector_library, PROMPT, steering=s, max_new_tokens=24, **o) for s, o in jobs]
    assert len(set(wants)) == len(wants)

    def ask(job):
        steering, options = job
        with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as c:
            stream = c.completions.create(
                model=tiny_llama.info.name,
                prompt=PROMPT,
                max_tokens=24,
                stream=True,
                extra_body={"steering": steering},
                **options,
            )
            return streamed_text(stream, chat=False)[0]

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        hold = EngineHold(tiny_llama)
        try:
            futures = [pool.submit(ask, job) for job in jobs]
            hold.wait_queued(len(jobs))  # all four wait behind the hold, so they join the batch at one step
            in_batch = hold.let_join()
        finally:
            hold.let_go()
        got = [future.result(120) for future in futures]
    # One batch decoded all four: joy, calm, unsteered and joy at layer 0 (labels name the vectors, not coefficients)
    assert in_batch.rows == len(jobs)
    assert set(in_batch.requests) == {"API completions · joy", "API completions · calm", "API completions"}
    assert got == wants


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"], ids=["send-waits", "send-raises"])
def test_a_stream_whose_client_left_before_it_started_is_cancelled_and_recorded(tiny_llama, tmp_path, spec_version):
    """The client is gone before the first byte, so the body's generator never starts (and its own ``finally`` never
    runs): ASGI 2.3 (uvicorn) tells the app by a disconnect while the response's start is being sent (here ``send``
    waits, as uvicorn's does when its write buffer is full), ASGI 2.4 by ``send`` raising OSError. The engine request
    must still be cancelled and recorded."""
    app = create_app(tiny_llama, ServerSettings(), library=VectorLibrary(tmp_path))
    body = json.dumps({"model": tiny_llama.info.name, "prompt": PROMPT, "max_tokens": 240, "stream": True,
                       "ignore_eos": True, "temperature": 0}).encode()  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict] = []

    async def receive():  # the body, then at once the disconnect (as uvicorn answers for a client already gone)
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message["type"])
        if spec_version == "2.4":
            raise OSError("the client is gone")
        await asyncio.sleep(0)  # a moment's wait: the disconnect is heard meanwhile and the response is cancelled

    holding, gate = threading.Event(), threading.Event()

    def blocker():  # the engine busy: the request is still queued when its client leaves
        holding.set()
        gate.wait(60)
        yield 1.0

    engine = engine_for(tiny_llama)
    job = engine.submit_job("test blocker", blocker())
    try:
        assert holding.wait(60)
        on_own_thread(
            lambda: asyncio.run(app(scope, receive, send))
        )  # a thread of its own: the browser tests' Playwright loop may be running on this one
        assert "http.response.body" not in sent  # nothing was streamed: the body never started
        assert [(e.route, e.status) for e in app.state.metrics.recent()] == [("/v1/completions", 499)]
        steps = engine.status().steps
    finally:
        gate.set()
        job.result(60)
    deadline = time.monotonic() + 30
    while app.state.admission.count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.state.admission.count == 0
    assert engine.status().steps == steps  # cancelled while queued: not one token decoded for nobody
    assert engine.status().rows == 0
    assert len(app.state.metrics.recent()) == 1  # recorded once


def test_vectors_upload_list_and_use(base_url, client, tiny_llama, vector_library):
    vector = random_vector(tiny_llama, (1,), seed=9)
    files = {"file": ("mine.safetensors", vector.to_safetensors(), "application/octet-stream")}
    answer = httpx.post(f"{base_url}/v1/vectors", files=files, data={"name": "uploaded"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["layers"] == [1]
    gguf_vector = random_vector(tiny_llama, (1,), seed=10, hook_point="resid_post")  # llama.cpp steers block outputs
    assert httpx.post(f"{base_url}/v1/vectors?name=from_gguf", content=gguf_vector.to_gguf()).status_code == 200
    assert torch.equal(vector_library.get("from_gguf", tiny_llama).directions, gguf_vector.directions)
    names = [entry["id"] for entry in httpx.get(f"{base_url}/v1/vectors").json()["data"]]
    assert {"joy", "calm", "uploaded", "from_gguf"} <= set(names)
    steering = [{"vector": "uploaded", "coefficient": 5.0}]
    want = reference(tiny_llama, vector_library, PROMPT, steering=steering, max_new_tokens=10, temperature=0.0)
    got = client.completions.create(
        model=tiny_llama.info.name, prompt=PROMPT, max_tokens=10, temperature=0, extra_body={"steering": steering}
    )
    assert got.choices[0].text == want
    with steer(tiny_llama, vector, 5.0):
        assert generate(tiny_llama, PROMPT, max_new_tokens=10).text == want  # the stored vector is the one sent


def test_an_upload_replaces_a_saved_vector_only_with_overwrite(base_url, tiny_llama, vector_library):
    first, second = random_vector(tiny_llama, (1,), seed=21), random_vector(tiny_llama, (1,), seed=22)

    def upload(vector, **form):
        files = {"file": ("v.safetensors", vector.to_safetensors(), "application/octet-stream")}
        return httpx.post(f"{base_url}/v1/vectors", files=files, data={"name": "replaceable", **form}, timeout=30)

    assert upload(first).status_code == 200
    refused = upload(second)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "vector_exists" and error["param"] == "name"
    assert "already in the library" in error["message"] and "overwrite=true" in error["message"]
    assert upload(second, overwrite="false").status_code == 409
    assert torch.equal(vector_library.get("replaceable", tiny_llama).directions, first.directions)  # kept as it was
    assert upload(second, overwrite="true").status_code == 200
    assert torch.equal(vector_library.get("replaceable", tiny_llama).directions, second.directions)
    raw = f"{base_url}/v1/vectors?name=replaceable"
    assert httpx.post(raw, content=first.to_safetensors(), timeout=30).status_code == 409
    assert httpx.post(f"{raw}&overwrite=true", content=first.to_safetensors(), timeout=30).status_code == 200
    assert torch.equal(vector_library.get("replaceable", tiny_llama).directions, first.directions)
    unclear = httpx.post(f"{raw}&overwrite=maybe", content=second.to_safetensors(), timeout=30)
    assert unclear.status_code == 400 and "overwrite must be true or false" in unclear.json()["error"]["message"]
    assert torch.equal(vector_library.get("replaceable", tiny_llama).directions, first.directions)


def test_a_client_that_disconnects_cancels_its_rows(served, tiny_llama):
    url, app = served
    body = {
        "model": tiny_llama.info.name,
        "prompt": PROMPT,
        "max_tokens": 240,
        "stream": True,
        "ignore_eos": True,
        "temperature": 0,
    }
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{url}/v1/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
    deadline = time.monotonic() + 30
    while app.state.admission.count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.state.admission.count == 0
    entry = next(e for e in app.state.metrics.recent() if e.route == "/v1/completions")
    assert entry.status == 499
    assert entry.tokens < 240  # it stopped early: not decoded to the end for nobody
    assert engine_for(tiny_llama).status().rows == 0


def test_api_key_is_required_when_set(tiny_llama, tmp_path):
    from tests.serve.conftest import API_KEY

    app = create_app(tiny_llama, ServerSettings(api_key=API_KEY), library=VectorLibrary(tmp_path))
    with running(app) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0) as good:
            assert [m.id for m in good.models.list().data] == [tiny_llama.info.name]
        with openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-key-0123456789", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError, match="API key"):
                bad.models.list()
        assert httpx.get(f"{url}/health").json()["status"] == "ok"  # the probe stays open


@pytest.mark.real_model
def test_real_model_steered_stream_equals_steer_and_generate(default_model, tmp_path):
    from steering.datasets import built_in
    from steering.make import mean_difference

    library = VectorLibrary(tmp_path)
    library.save(mean_difference(default_model, built_in("sentiment"), layers=[4, 5], position="mean"), "sentiment")
    steering = [{"vector": "sentiment", "coefficient": 6.0}]
    prompt = "Write one sentence about the weather."
    app = create_app(default_model, ServerSettings(), library=library)
    with running(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as c:
        for sampling in ({"temperature": 0.0}, {"temperature": 0.7, "seed": 4}):
            want = reference(default_model, library, prompt, steering=steering, chat=True, max_new_tokens=16, **sampling)
            assert want != reference(default_model, library, prompt, chat=True, max_new_tokens=16, **sampling)
            stream = c.chat.completions.create(
                model=default_model.info.name, messages=[{"role": "user", "content": prompt}], max_tokens=16, stream=True,
                extra_body={"steering": steering}, **sampling,
            )  # fmt: skip
            assert streamed_text(stream, chat=True)[0] == want


class FakeBook:
    """The experiment book's interface as the app uses it: assign an arm per user, record each response."""

    def __init__(self) -> None:
        import dataclasses

        from serve.schema import SteeringItem

        @dataclasses.dataclass(frozen=True)
        class Arm:
            name: str
            steering: tuple = ()

        self.arms = {"control": Arm("control"), "joyful": Arm("joyful", (SteeringItem(vector="joy", coefficient=4.0),))}
        self.recorded: list[dict] = []

    def assign(self, experiment, user):
        from interp import InputError

        if experiment != "mood":
            raise InputError(f"No experiment named {experiment!r}; experiments: mood.")
        if not user:
            raise InputError("An experiment needs user (the id that picks the arm).")
        return self.arms["joyful" if user.startswith("j") else "control"]

    def record_response(self, **fields) -> None:
        self.recorded.append(fields)


def test_experiment_arm_sets_the_steering_and_each_response_is_recorded(monkeypatch, tiny_llama, vector_library):
    import sys
    import types

    from fastapi import APIRouter

    fake_module = types.ModuleType("serve.experiments")
    fake_module.experiments_router = lambda book: APIRouter()
    monkeypatch.setitem(sys.modules, "serve.experiments", fake_module)  # the book's own routes are tested with it
    book = FakeBook()
    app = create_app(tiny_llama, ServerSettings(), library=vector_library, experiments=book)
    joyful = reference(tiny_llama, vector_library, PROMPT, steering=[{"vector": "joy", "coefficient": 4.0}], max_new_tokens=8)
    control = reference(tiny_llama, vector_library, PROMPT, max_new_tokens=8)
    with running(app) as url:
        http = httpx.Client(base_url=url, timeout=30)
        body = {"model": tiny_llama.info.name, "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "experiment": "mood"}
        answer = http.post("/v1/completions", json={**body, "user": "jane"}).json()
        assert answer["choices"][0]["text"] == joyful
        assert answer["steerscope"]["experiment"] == "mood" and answer["steerscope"]["arm"] == "joyful"
        assert answer["steerscope"]["response_id"] == answer["id"]
        lines = [
            line for line in http.post("/v1/completions", json={**body, "user": "bob", "stream": True}).text.splitlines() if line
        ]
        first = httpx.Response(200, content=lines[0].removeprefix("data: ")).json()
        assert first["steerscope"]["arm"] == "control"
        assert lines[-1] == "data: [DONE]"
        missing = http.post("/v1/completions", json=body)
        assert missing.status_code == 400 and "needs user" in missing.json()["error"]["message"]
    assert [(r["arm"], r["user"], r["text"]) for r in book.recorded] == [("joyful", "jane", joyful), ("control", "bob", control)]
    assert book.recorded[0]["response_id"] == answer["id"] and book.recorded[0]["prompt"] == PROMPT
