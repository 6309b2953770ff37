"""The server as a Ray Serve deployment: two replicas on a local Ray answer as ``steer()`` + ``generate()`` in Python."""

from __future__ import annotations

import socket

import httpx
import openai
import pytest

from interp import InputError
from serve.ray_serve import main, start, stop
from serve.settings import ServerSettings
from tests.serve.test_api import PROMPT, reference, streamed_text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_data(tmp_path_factory):
    """The data folder of this module's Ray: set before ``ray.init``, so the replicas (Ray workers) inherit it too."""
    data = tmp_path_factory.mktemp("ray-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEERSCOPE_DATA", str(data))  # each replica's experiment book and run store, not the repo's data/
        patch.setenv("STEERSCOPE_TRACKING_URI", f"sqlite:///{data / 'mlflow.db'}")
        yield data


@pytest.fixture(scope="module")
def ray_served(ray_data, tiny_llama_dir, vector_library):
    """Base URL of Ray Serve's proxy on 127.0.0.1 in front of 2 replicas of the tiny Llama; Serve and Ray stop after."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = _free_port()
        start(
            ServerSettings(port=port, model=str(tiny_llama_dir), max_tokens=240),
            replicas=2,
            library_folder=str(vector_library.folder),
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(started_ray=False)
        ray.shutdown()


def test_two_replicas_answer_as_generate_and_share_the_requests(ray_served, ray_data, tiny_llama, vector_library):
    steering = [{"vector": "joy", "coefficient": 4.0}]
    name = tiny_llama.info.name
    with openai.OpenAI(base_url=f"{ray_served}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        assert [m.id for m in client.models.list().data] == [name]
        plain = client.completions.create(model=name, prompt=PROMPT, max_tokens=12, temperature=0)
        assert plain.choices[0].text == reference(tiny_llama, vector_library, PROMPT, max_new_tokens=12)

        want = reference(tiny_llama, vector_library, PROMPT, steering=steering, max_new_tokens=12)
        assert want != plain.choices[0].text  # the vector changes the text, so the equalities below are about steering
        for _ in range(4):  # several, so both replicas answer some
            streamed = client.completions.create(
                model=name, prompt=PROMPT, max_tokens=12, temperature=0, stream=True, extra_body={"steering": steering}
            )
            assert streamed_text(streamed, chat=False)[0] == want

        chat_want = reference(tiny_llama, vector_library, "Hello there", steering=steering, chat=True, max_new_tokens=10)
        chat = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hello there"}], max_tokens=10, temperature=0,
            extra_body={"steering": steering},
        )  # fmt: skip
        assert chat.choices[0].message.content == chat_want

        with pytest.raises(openai.NotFoundError, match="Set model to"):  # the server's own errors, through the proxy
            client.completions.create(model="gpt-4", prompt=PROMPT, max_tokens=2)

    replicas = {httpx.get(f"{ray_served}/health", timeout=30).json()["pid"] for _ in range(24)}
    assert len(replicas) == 2  # Ray Serve's proxy spreads requests over both replicas (each its own process)
    assert (ray_data / "mlflow.db").is_file()  # the replicas opened their run store in the test's data folder


def test_a_public_bind_without_a_key_is_refused_before_anything_starts(capsys, monkeypatch):
    import ray

    monkeypatch.delenv("STEERSCOPE_API_KEY", raising=False)  # with a key exported, main() would serve on 0.0.0.0

    running = ray.is_initialized()  # the module's Ray may be up; this must neither start nor stop one
    with pytest.raises(InputError, match="Refusing to listen on 0.0.0.0"):
        start(ServerSettings(host="0.0.0.0", model="unused"), replicas=2)
    assert main(["--host", "0.0.0.0", "--replicas", "2"]) == 2
    assert "Refusing to listen on 0.0.0.0" in capsys.readouterr().err
    assert main(["--replicas", "0"]) == 2 and "--replicas must be a whole number from 1" in capsys.readouterr().err
    assert ray.is_initialized() == running
