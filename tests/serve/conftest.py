"""The server under test: a real uvicorn on a free 127.0.0.1 port, over the tiny Llama, with a small vector library."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from interp import LoadedModel
from serve.api import create_app
from serve.library import VectorLibrary
from serve.settings import ServerSettings
from steering.vector import SteeringVector

API_KEY = "test-key-0123456789abcdef"


def random_vector(
    model: LoadedModel, layers=(0, 1), seed: int = 0, scale: float = 3.0, hook_point: str = "resid_pre"
) -> SteeringVector:
    """A vector for ``model``: random directions of about the residual stream's size (big enough to change text)."""
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector(
        layers=tuple(layers), directions=torch.randn(len(layers), model.info.d_model, generator=generator) * scale,
        hook_point=hook_point, model_name=model.info.name, d_model=model.info.d_model,
        weights_sha256=model.info.weights_sha256, method="test",
    )  # fmt: skip


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1 (a port the OS picks); yields its base URL; always stops it."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="session")
def vector_library(tmp_path_factory: pytest.TempPathFactory, tiny_llama: LoadedModel) -> VectorLibrary:
    library = VectorLibrary(tmp_path_factory.mktemp("vectors"))
    library.save(random_vector(tiny_llama, (0, 1), seed=1), "joy")
    library.save(random_vector(tiny_llama, (1,), seed=2), "calm")
    return library


@pytest.fixture(scope="session")
def served(tiny_llama: LoadedModel, vector_library: VectorLibrary) -> Iterator[tuple[str, object]]:
    """(base URL, app) of a server with default settings over the tiny Llama."""
    app = create_app(tiny_llama, ServerSettings(max_tokens=240), library=vector_library)
    with running(app) as url:
        yield url, app


@pytest.fixture(scope="session")
def base_url(served) -> str:
    return served[0]


@pytest.fixture()
def client(base_url: str):
    import openai

    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def library_folder(vector_library: VectorLibrary) -> Path:
    return vector_library.folder
