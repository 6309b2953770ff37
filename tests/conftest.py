"""Shared fixtures: tiny checkpoints saved to temp folders, and the real default model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interp import LoadedModel, load_model
from tests.checkpoints import save_tiny_gpt2, save_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir: Path) -> LoadedModel:
    return load_model(tiny_llama_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir: Path) -> LoadedModel:
    return load_model(tiny_gpt2_dir, device="cpu")


@pytest.fixture(scope="session", params=["llama", "gpt2"])
def tiny_model(request: pytest.FixtureRequest) -> LoadedModel:
    """Each tiny architecture in turn: grouped-query Llama with RoPE, and GPT-2."""
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="session")
def default_model() -> LoadedModel:
    """The embedded SmolLM2-135M-Instruct (converted once into the Steerscope cache)."""
    return load_model(None, device="cpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that use the real model get the marker automatically, so `-m "not real_model"`
    # gives the fast loop while `make test` runs everything.
    for item in items:
        if "default_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_model)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
