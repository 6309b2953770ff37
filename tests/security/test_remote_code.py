"""No path in the project runs code from a model folder.

The trap: a tiny checkpoint whose every JSON config names a Python file beside it (``auto_map``),
each file writing a marker when imported. Every entry point a user has (the Python API, the
command line with stdin answering "y", the app's sidebar) must refuse the folder with a message
that says what was refused and why, and no marker may ever appear. A first test proves the trap
is armed: transformers, told to trust the folder, does import the code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interp import ModelLoadError, load_model
from interp.loading import load_hf_model, refuse_custom_code

ROOT = Path(__file__).resolve().parents[2]

# Each config file, the auto_map entry transformers reads from it, and the module it names.
TRAPS = {
    "config.json": {"AutoConfig": "code_config.EvilConfig", "AutoModelForCausalLM": "code_config.EvilModel"},
    "tokenizer_config.json": {"AutoTokenizer": ["code_tokenizer.EvilTokenizer", None]},
    "generation_config.json": {"AutoModelForCausalLM": "code_generation.EvilModel"},
    "preprocessor_config.json": {"AutoImageProcessor": "code_preprocessor.EvilProcessor"},
    "processor_config.json": {"AutoProcessor": "code_processor.EvilProcessor"},
}
REFUSAL = "Steerscope never runs code that comes with a model"


def _module_source(marker: Path) -> str:
    # Runs at import: the marker is the proof that code from the folder ran.
    return (
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast\n"
        "class EvilConfig(LlamaConfig):\n    pass\n"
        "class EvilModel(LlamaForCausalLM):\n    pass\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
        "class EvilProcessor:\n    pass\n"
    )


def arm(folder: Path, markers: Path, files: tuple[str, ...] = tuple(TRAPS)) -> Path:
    """Add an auto_map to each of ``files`` in ``folder``, pointing at marker-writing modules."""
    markers.mkdir(parents=True, exist_ok=True)
    for name in files:
        path = folder / name
        config = json.loads(path.read_text()) if path.exists() else {}
        config["auto_map"] = TRAPS[name]
        path.write_text(json.dumps(config, indent=1))
        module = name.removesuffix(".json").removesuffix("_config").removesuffix("config") or "config"
        (folder / f"code_{module}.py").write_text(_module_source(markers / f"ran-{module}"))
    return folder


@pytest.fixture
def trap(tmp_path: Path, tiny_llama_dir: Path) -> tuple[Path, Path]:
    """A checkpoint folder with auto_map in every config file, and the folder its markers would go to."""
    folder = tmp_path / "evil-checkpoint"
    shutil.copytree(tiny_llama_dir, folder)
    return arm(folder, tmp_path / "markers"), tmp_path / "markers"


def _env(tmp_path: Path) -> dict[str, str]:
    # Dynamic modules would be copied here, not into the user's Hugging Face cache.
    return dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "hf-modules"), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))


def test_the_trap_is_armed_when_transformers_is_told_to_trust_the_folder(trap, tmp_path):
    folder, markers = trap
    script = (
        "import sys\nfrom transformers import AutoConfig, AutoTokenizer\n"
        "AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in markers.iterdir()} == {"ran-config", "ran-tokenizer"}


def test_the_python_api_refuses_the_folder(trap):
    folder, markers = trap
    with pytest.raises(ModelLoadError) as refused:
        load_model(folder, device="cpu")
    message = str(refused.value)
    assert REFUSAL in message and "trust_remote_code" in message and str(folder) in message
    for name in TRAPS:
        assert f"{name} has 'auto_map'" in message
    assert not any(markers.iterdir())


@pytest.mark.parametrize("name", list(TRAPS))
def test_an_auto_map_in_any_one_config_file_is_refused(name, tmp_path, tiny_llama_dir):
    folder = tmp_path / "one-trap"
    shutil.copytree(tiny_llama_dir, folder)
    arm(folder, tmp_path / "markers", files=(name,))
    with pytest.raises(ModelLoadError, match=f"{name} has 'auto_map'"):
        load_model(folder, device="cpu")
    assert not any((tmp_path / "markers").iterdir())


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda f: (f / "config.json").write_text(json.dumps({**json.loads((f / "config.json").read_text()),
                                                              "custom_pipelines": {"x": {"impl": "p.P"}}})),
         "config.json has 'custom_pipelines'"),
        (lambda f: (f / "custom_generate").mkdir() or (f / "custom_generate" / "generate.py").write_text("x = 1"),
         "custom_generate/"),
        (lambda f: (f / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere"})),
         "PEFT adapter"),
        (lambda f: (f / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["t.T", null]}, broken'),
         "tokenizer_config.json has 'auto_map'"),
    ],
    ids=["custom_pipelines", "custom_generate", "peft_adapter", "invalid_json_with_auto_map"],
)  # fmt: skip
def test_other_ways_of_naming_code_are_refused(make, named, tmp_path, tiny_llama_dir):
    folder = tmp_path / "other"
    shutil.copytree(tiny_llama_dir, folder)
    make(folder)
    with pytest.raises(ModelLoadError, match=REFUSAL) as refused:
        load_model(folder, device="cpu")
    assert named in str(refused.value)


def test_a_token_spelt_auto_map_is_not_a_request_for_code(tmp_path, tiny_llama_dir):
    folder = tmp_path / "vocab"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "vocab.json").write_text(json.dumps({"auto_map": 0, "custom_pipelines": 1}))
    refuse_custom_code(folder)  # no error


def test_transformers_alone_never_asks_or_runs_the_code(trap, monkeypatch):
    """Below the refusal: with it switched off, every from_pretrained still passes trust_remote_code=False."""
    import io

    import interp.loading

    folder, markers = trap
    monkeypatch.setattr(interp.loading, "refuse_custom_code", lambda folder: None)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n" * 10))
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("transformers asked whether to run the folder's code"))
    with contextlib.suppress(ModelLoadError):  # refusing is fine too; running is not
        load_hf_model(folder)
    assert not any(markers.iterdir())


def test_the_command_line_refuses_the_folder_even_when_stdin_says_yes(trap, tmp_path):
    folder, markers = trap
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt\nI love dogs because\n")
    done = subprocess.run(
        [sys.executable, "-m", "interp", "attribute", str(prompts), "--method", "ablation",
         "--out", str(tmp_path / "out.csv"), "--model", str(folder)],
        cwd=folder.parent, env=_env(tmp_path), input="y\n" * 10, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert REFUSAL in done.stderr and "Traceback" not in done.stderr
    assert "tokenizer_config.json has 'auto_map'" in done.stderr
    assert not any(markers.iterdir())


def test_the_app_refuses_the_folder_typed_in_the_sidebar(trap):
    from streamlit.testing.v1 import AppTest

    from ui.model import OTHER_CHOICE

    folder, markers = trap
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.session_state["model_choice"] = OTHER_CHOICE
    app.session_state["model_custom_spec"] = str(folder)
    app.run()
    assert not app.exception
    shown = [_unescaped(error.value) for error in app.sidebar.error]
    assert any(REFUSAL in text and "tokenizer_config.json has 'auto_map'" in text for text in shown)
    assert any(REFUSAL in _unescaped(warning.value) for warning in app.warning)  # the page says why there is no model
    assert not any(markers.iterdir())


def _unescaped(markdown: str) -> str:
    # The app escapes Markdown in messages (a path's underscores arrive as \\_).
    return markdown.replace("\\", "")


@pytest.mark.real_model
def test_a_gguf_file_is_read_without_the_files_beside_it(trap, tmp_path, monkeypatch):
    """A .gguf in a folder of booby-trapped configs loads from the GGUF alone; nothing beside it is read."""
    from interp.loading import default_gguf_path

    folder, markers = trap
    (folder / "model.gguf").symlink_to(default_gguf_path())
    monkeypatch.setenv("STEERSCOPE_CACHE", str(tmp_path / "cache"))
    model = load_model(folder / "model.gguf", device="cpu")
    assert model.info.n_layers == 30
    assert not any(markers.iterdir())
