"""Bad requests: each gets OpenAI's error shape with a message that says what to fix, and the server stays healthy."""

from __future__ import annotations

import io
import pickle
import threading

import httpx
import numpy as np
import pytest
import torch

from interp import InputError
from interp.engine import engine_for
from serve.api import DETAIL_CHARS, create_app, shown_detail
from serve.library import VectorLibrary, check_name
from serve.settings import ServerSettings, check_bind
from steering.vector import SteeringVector
from tests.serve.conftest import API_KEY, running

MODEL = "<served>"  # replaced by the served model's name


def completion(**fields) -> dict:
    return {"model": MODEL, "prompt": "Hello there", "max_tokens": 4, **fields}


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}


RAW = "raw"  # a body sent as these exact bytes (JSON's NaN, broken JSON)
CONTENT_TYPES = {  # the other bodies sent as exact bytes: (kind, text) with the content type of its kind
    RAW: "application/json",
    "form": "application/x-www-form-urlencoded",
    "multipart-no-boundary": "multipart/form-data",
    "multipart-broken": "multipart/form-data; boundary=xyz",
}

# (id, method, path, body: dict for JSON / (RAW, text) / None, status, words the message must contain)
CASES = [
    ("malformed-json", "POST", "/v1/completions", (RAW, '{"model": "x", "prompt": '), 400, ["not valid JSON"]),
    ("not-an-object", "POST", "/v1/completions", (RAW, "[1, 2, 3]"), 422, ["JSON object"]),
    ("nan-coefficient", "POST", "/v1/completions",
     (RAW, '{"model": "<served>", "prompt": "x", "steering": [{"vector": "joy", "coefficient": NaN}]}'), 422,
     ["steering[0].coefficient", "finite"]),
    ("inf-coefficient", "POST", "/v1/chat/completions",
     (RAW, '{"model": "<served>", "messages": [{"role": "user", "content": "x"}], '
           '"steering": [{"vector": "joy", "coefficient": -Infinity}]}'),
     422, ["finite"]),
    ("nan-temperature", "POST", "/v1/completions", (RAW, '{"model": "<served>", "prompt": "x", "temperature": NaN}'), 422,
     ["temperature"]),
    ("unknown-vector", "POST", "/v1/completions", completion(steering=[{"vector": "sadness"}]), 404, ["sadness", "joy", "calm"]),
    ("unsafe-vector-name", "POST", "/v1/completions", completion(steering=[{"vector": "../../etc/passwd"}]), 400,
     ["not a vector name"]),
    ("unknown-model", "POST", "/v1/completions", {**completion(), "model": "gpt-4o"}, 404, ["gpt-4o", "GET /v1/models"]),
    ("max-tokens-too-large", "POST", "/v1/completions", completion(max_tokens=100_000), 400, ["max_tokens", "240"]),
    ("max-tokens-negative", "POST", "/v1/completions", completion(max_tokens=-3), 422, ["max_tokens"]),
    ("missing-messages", "POST", "/v1/chat/completions", {"model": MODEL}, 422, ["messages is required"]),
    ("empty-messages", "POST", "/v1/chat/completions", {"model": MODEL, "messages": []}, 422, ["messages"]),
    ("bad-role", "POST", "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 422,
     ["role"]),
    ("missing-prompt", "POST", "/v1/completions", {"model": MODEL}, 422, ["prompt is required"]),
    ("prompt-wrong-type", "POST", "/v1/completions", completion(prompt=42), 422, ["prompt"]),
    ("temperature-wrong-type", "POST", "/v1/completions", completion(temperature="hot"), 422, ["temperature"]),
    ("top-p-zero", "POST", "/v1/completions", completion(top_p=0), 422, ["top_p"]),
    ("unknown-field-in-steering", "POST", "/v1/completions", completion(steering=[{"vector": "joy", "strength": 2}]), 422,
     ["strength", "vector, coefficient, layers, positions"]),
    ("unknown-top-level-field", "POST", "/v1/completions", completion(tempreature=0.5), 422, ["tempreature", "temperature"]),
    ("bad-positions", "POST", "/v1/completions", completion(steering=[{"vector": "joy", "positions": "end"}]), 422,
     ["positions"]),
    ("layer-out-of-range", "POST", "/v1/completions", completion(steering=[{"vector": "joy", "layers": [7]}]), 400,
     ["[7]", "layers 0..1"]),
    ("layer-not-in-vector", "POST", "/v1/completions", completion(steering=[{"vector": "calm", "layers": [0]}]), 400,
     ["calm", "covers [1]"]),
    ("prompt-too-long", "POST", "/v1/completions", completion(prompt="dogs and cats " * 200, max_tokens=16), 400,
     ["tokens", "256", "shorten"]),
    ("too-many-choices", "POST", "/v1/completions", completion(n=50), 400, ["at most 8"]),
    ("penalty-unsupported", "POST", "/v1/chat/completions", chat(frequency_penalty=0.5), 422,
     ["frequency_penalty", "not supported"]),
    ("too-many-stops", "POST", "/v1/completions", completion(stop=["a", "b", "c", "d", "e"]), 422, ["stop"]),
    ("experiment-and-steering", "POST", "/v1/completions",
     completion(experiment="ab", user="u1", steering=[{"vector": "joy"}]), 400,
     ["experiment or steering, not both"]),
    ("no-experiments-here", "POST", "/v1/completions", completion(experiment="ab", user="u1"), 400, ["no experiments"]),
    ("unknown-route", "GET", "/v1/engines", None, 404, ["/v1/completions"]),
    ("wrong-method", "GET", "/v1/completions", None, 405, ["GET"]),
    ("form-not-json", "POST", "/v1/completions", ("form", "model=x&prompt=y"), 422, ["Content-Type: application/json"]),
    ("multipart-without-boundary", "POST", "/v1/vectors", ("multipart-no-boundary", "name=joy"), 400,
     ["could not be read", "boundary", "multipart/form-data with a file field named file", "?name="]),
    ("multipart-broken", "POST", "/v1/vectors",
     ("multipart-broken", '--xyz\r\nContent-Disposition: form-data; filename="<b>v</b>"\r\n\r\nabc\r\n--xyz--\r\n'), 400,
     ["could not be read", "Content-Disposition", "a field named name"]),
]  # fmt: skip


def check_error_shape(response: httpx.Response, status: int, words: list[str]) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    for word in words:
        assert word in error["message"], (word, error["message"])
    assert "Traceback" not in response.text and 'File "' not in response.text
    return error


def assert_healthy(url: str, model_name: str) -> None:
    good = httpx.post(
        f"{url}/v1/completions", json={"model": model_name, "prompt": "Hi", "max_tokens": 2, "temperature": 0}, timeout=30
    )
    assert good.status_code == 200, good.text
    assert good.json()["choices"][0]["text"] is not None


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_gets_a_clear_error_and_the_server_stays_healthy(base_url, tiny_llama, method, path, body, status, words):
    name = tiny_llama.info.name
    with httpx.Client(base_url=base_url, timeout=30) as http:
        if body is None:
            response = http.request(method, path)
        elif isinstance(body, tuple):
            response = http.request(
                method, path, content=body[1].replace(MODEL, name), headers={"content-type": CONTENT_TYPES[body[0]]}
            )
        else:
            body = {**body, "model": name} if body.get("model") == MODEL else body
            response = http.request(method, path, json=body)
    check_error_shape(response, status, words)
    assert_healthy(base_url, tiny_llama.info.name)


def test_a_frameworks_error_detail_is_shown_on_one_line_trimmed_and_escaped():
    shown = shown_detail('Bad part "<script>alert(1)</script>"\r\n\x00' + "x" * 500)
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "\n" not in shown and "\x00" not in shown
    assert len(shown) <= DETAIL_CHARS and shown.endswith("…")


def test_huge_body_is_refused_before_it_is_read(base_url, tiny_llama):
    huge = completion(model=tiny_llama.info.name, prompt="x" * 2_000_000)
    check_error_shape(httpx.post(f"{base_url}/v1/completions", json=huge, timeout=30), 413, ["larger than", "1,000,000 bytes"])

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"model": "x", "prompt": "'
        for _ in range(300):
            yield b"y" * 10_000
        yield b'"}'

    response = httpx.post(
        f"{base_url}/v1/completions", content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    check_error_shape(response, 413, ["larger than"])
    assert_healthy(base_url, tiny_llama.info.name)


def _upload(url: str, name: str, data: bytes, file_name: str = "v.safetensors") -> httpx.Response:
    return httpx.post(f"{url}/v1/vectors", files={"file": (file_name, data)}, data={"name": name}, timeout=30)


def test_bad_uploads_are_refused_with_what_to_fix(base_url, tiny_llama, library_folder):
    wide = SteeringVector(layers=(0,), directions=torch.ones(1, tiny_llama.info.d_model + 8))
    check_error_shape(_upload(base_url, "wide", wide.to_safetensors()), 400, ["72 wide", "d_model = 64"])
    wide_gguf = SteeringVector(layers=(1,), directions=torch.ones(1, tiny_llama.info.d_model + 8), hook_point="resid_post")
    check_error_shape(_upload(base_url, "wide_gguf", wide_gguf.to_gguf(), "v.gguf"), 400, ["72 wide"])
    pickled = pickle.dumps({"direction.0": np.ones(64)})
    check_error_shape(_upload(base_url, "evil", pickled, "evil.pt"), 400, ["pickle", "never opened"])
    buffer = io.BytesIO()
    torch.save({"direction.0": torch.ones(64)}, buffer)
    check_error_shape(_upload(base_url, "evil2", buffer.getvalue(), "v.safetensors"), 400, ["pickle"])
    check_error_shape(_upload(base_url, "text", b"hello, I am not a vector"), 400, [".safetensors", ".gguf"])
    ok = SteeringVector(layers=(0,), directions=torch.ones(1, tiny_llama.info.d_model))
    check_error_shape(_upload(base_url, "../outside", ok.to_safetensors()), 400, ["not a vector name"])
    check_error_shape(httpx.post(f"{base_url}/v1/vectors", content=ok.to_safetensors(), timeout=30), 400, ["name"])
    saved = (library_folder / "joy.safetensors").read_bytes()
    error = check_error_shape(_upload(base_url, "joy", ok.to_safetensors()), 409, ["'joy' is already", "overwrite=true"])
    assert error["code"] == "vector_exists"
    assert (library_folder / "joy.safetensors").read_bytes() == saved  # the saved vector is untouched
    assert not any(p.name.startswith(("wide", "evil", "text")) for p in library_folder.iterdir())  # nothing bad was kept
    assert not (library_folder.parent / "outside.safetensors").exists()
    assert_healthy(base_url, tiny_llama.info.name)


def test_api_key_missing_or_wrong_is_401(tiny_llama, tmp_path):
    app = create_app(tiny_llama, ServerSettings(api_key=API_KEY), library=VectorLibrary(tmp_path))
    with running(app) as url:
        body = {"model": tiny_llama.info.name, "prompt": "Hi", "max_tokens": 2}
        check_error_shape(httpx.post(f"{url}/v1/completions", json=body), 401, ["Authorization: Bearer"])
        wrong = {"Authorization": "Bearer not-the-key-000000000"}
        check_error_shape(httpx.post(f"{url}/v1/completions", json=body, headers=wrong), 401, ["not right"])
        check_error_shape(httpx.get(f"{url}/metrics", headers={"Authorization": f"Basic {API_KEY}"}), 401, ["Bearer"])
        good = httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        assert good.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_listening_beyond_this_machine_without_a_key_is_refused(host):
    with pytest.raises(InputError, match=r"Refusing to listen.*API key"):
        check_bind(ServerSettings(host=host))
    check_bind(ServerSettings(host=host, api_key=API_KEY))  # with a key it may
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        check_bind(ServerSettings(host=loopback))


def test_main_refuses_a_public_bind_without_a_key(monkeypatch, capsys):
    from serve.__main__ import main

    monkeypatch.delenv("STEERSCOPE_API_KEY", raising=False)
    assert main(["--host", "0.0.0.0"]) == 2  # before loading any model
    assert "Refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_short_api_key_and_bad_names_are_refused():
    with pytest.raises(InputError, match="at least 16"):
        ServerSettings(api_key="abc")
    for bad in ("", "../x", "a/b", "x" * 65, ".hidden", "joy.safetensors"):
        with pytest.raises(InputError):
            check_name(bad)


def test_full_queue_is_429_with_retry_after(tiny_llama, tmp_path):
    app = create_app(tiny_llama, ServerSettings(max_queue=1), library=VectorLibrary(tmp_path))
    gate = threading.Event()

    def blocker():  # a long job holding the engine's thread, so the first request waits in the queue
        gate.wait(60)
        yield 1.0

    body = {"model": tiny_llama.info.name, "prompt": "Hi", "max_tokens": 3, "temperature": 0}
    with running(app) as url, httpx.Client(timeout=60) as http:
        job = engine_for(tiny_llama).submit_job("test blocker", blocker())
        try:
            with http.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as first:
                assert first.status_code == 200
                response = http.post(f"{url}/v1/completions", json=body)
                error = check_error_shape(response, 429, ["busy", "limit is 1", "Retry"])
                assert error["code"] == "queue_full"
                assert response.headers["retry-after"] == "1"
                gate.set()
                assert first.read().decode().rstrip().endswith("data: [DONE]")
        finally:
            gate.set()
            job.result(60)
        assert_healthy(url, tiny_llama.info.name)
