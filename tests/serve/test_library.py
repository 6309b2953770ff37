"""The vector library: saved by name, read back exactly, checked for the model, uploads validated like the app's."""

from __future__ import annotations

import pytest
import torch

from interp import InputError
from serve.library import UnknownVector, VectorLibrary, default_folder
from steering.vector import load_vector
from tests.serve.conftest import random_vector


def test_save_list_get_round_trip(tmp_path, tiny_llama):
    library = VectorLibrary(tmp_path / "lib")
    assert library.list() == []
    vector = random_vector(tiny_llama, (0, 1), seed=3)
    entry = library.save(vector, "joy_L0")
    assert (entry.name, entry.layers, entry.d_model, entry.model_name) == ("joy_L0", (0, 1), 64, tiny_llama.info.name)
    assert [e.name for e in library.list()] == ["joy_L0"]
    assert library.get("joy_L0", tiny_llama).equals(vector)
    # the file is the app's own format: what the Steering page's download holds, read back by load_vector
    assert load_vector("x.safetensors", (tmp_path / "lib" / "joy_L0.safetensors").read_bytes(), tiny_llama).equals(vector)
    assert [p.name for p in (tmp_path / "lib").iterdir()] == ["joy_L0.safetensors"]  # no temporary file left behind


def test_saving_again_replaces_and_is_read_fresh(tmp_path, tiny_llama):
    library = VectorLibrary(tmp_path)
    library.save(random_vector(tiny_llama, seed=1), "v")
    assert library.get("v", tiny_llama).equals(random_vector(tiny_llama, seed=1))
    library.save(random_vector(tiny_llama, seed=2), "v")
    assert library.get("v", tiny_llama).equals(random_vector(tiny_llama, seed=2))


def test_unknown_name_lists_what_is_there(tmp_path, tiny_llama):
    library = VectorLibrary(tmp_path)
    library.save(random_vector(tiny_llama), "calm")
    with pytest.raises(UnknownVector, match=r"'joy'.*Saved vectors: calm"):
        library.get("joy", tiny_llama)


def test_a_vector_for_another_model_is_refused(tmp_path, tiny_llama, tiny_gpt2):
    library = VectorLibrary(tmp_path)
    wide = random_vector(tiny_gpt2, (0,))
    if tiny_gpt2.info.d_model == tiny_llama.info.d_model:
        wide = random_vector(tiny_llama, (5,))  # a layer the tiny Llama does not have
    library.save(wide, "other")
    with pytest.raises(InputError, match="other.safetensors"):
        library.get("other", tiny_llama)


def test_upload_gguf_is_stored_as_safetensors(tmp_path, tiny_llama):
    library = VectorLibrary(tmp_path)
    vector = random_vector(tiny_llama, (1,), seed=4, hook_point="resid_post")
    entry = library.upload("from_llama_cpp", vector.to_gguf(), tiny_llama)
    assert entry.layers == (1,) and entry.hook_point == "resid_post"
    assert torch.equal(library.get("from_llama_cpp", tiny_llama).directions, vector.directions)


def test_upload_limits_and_formats(tmp_path, tiny_llama):
    library = VectorLibrary(tmp_path, max_upload_bytes=1000)
    with pytest.raises(InputError, match="limit for a vector is"):
        library.upload("big", b"\0" * 2000, tiny_llama)
    with pytest.raises(InputError, match="no layers"):
        library.upload("arr", random_vector(tiny_llama, (0,)).to_npy()[:900], tiny_llama)
    assert library.list() == []


def test_default_folder_follows_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path))
    assert default_folder() == tmp_path / "vectors"
    assert VectorLibrary().folder == tmp_path / "vectors"
