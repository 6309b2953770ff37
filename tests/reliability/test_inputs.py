"""Bad numbers, texts and files: each refused with a message that says what to fix, and nothing changed or lost.

Through the entry points a user has: the Python API and the spec constructors (what the CLI, the pages and
replay build), the Steering page (AppTest, opened through app.py on a tiny model), and the command line (a
subprocess). Cases that were already answered well are here too, so they stay so.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.errors import InputError
from interp.forward import NextTokenRun, next_token_predictions
from interp.generation import generate, generate_batch
from interp.tokens import tokenize
from interp.validation import parse_ints, parse_numbers
from steering.apply import steer
from steering.datasets import MAX_PAIRS, ContrastPairs, read_pairs
from steering.make import MAX_TEXT_TOKENS, actadd, mean_difference
from steering.rlhf import DPORun, RewardTrainingRun, builtin_preferences
from steering.runs import SteeringEvaluation, SteeringSweep
from steering.vector import SteeringVector, load_vector
from tests.reliability.conftest import ROOT, assert_no_traceback, open_page, visible_text

NAN, INF = float("nan"), float("inf")
LONG_TEXT = "word " * 300  # over MAX_TEXT_TOKENS tokens, under the character caps
PAIRS = ContrastPairs("test", ("I love it", "What a joy", "Wonderful"), ("I hate it", "What a pain", "Awful"))


def vector(model, layers=(0, 1)) -> SteeringVector:
    directions = torch.randn(len(layers), model.info.d_model, generator=torch.Generator().manual_seed(0))
    return SteeringVector(layers=tuple(layers), directions=directions, model_name=model.info.name, d_model=model.info.d_model)


def safetensors_file(tensors: dict[str, torch.Tensor], **metadata: str) -> bytes:
    from safetensors.torch import save

    meta = {"format": "steerscope-steering-vector", "layers": "[0]", "hook_point": "resid_pre"} | metadata
    return save(tensors, metadata=meta)


def gguf_file(tensors: dict[str, np.ndarray]) -> bytes:
    import gguf

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.gguf"
        writer = gguf.GGUFWriter(path, arch="controlvector")
        for name, array in tensors.items():
            writer.add_tensor(name, array.astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


def npy_file(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def pairs_csv(rows: list[tuple[str, str]]) -> bytes:
    return ("positive,negative\n" + "".join(f'"{p}","{n}"\n' for p, n in rows)).encode()


# --- the Python API and the specs: (what a user calls, the message that says what to fix) -----------------------

Call = Callable[..., object]

API_CASES: dict[str, tuple[Call, str]] = {
    # numbers
    "NaN temperature": (lambda m: generate(m, "Hello", temperature=NAN), "temperature must be a finite number"),
    "infinite temperature": (lambda m: generate(m, "Hello", temperature=INF, seed=1), "temperature must be a finite number"),
    "negative temperature": (lambda m: generate(m, "Hello", temperature=-1.0), "Temperature must be 0 .greedy. or positive"),
    "NaN top_p": (lambda m: generate(m, "Hello", temperature=1.0, top_p=NAN, seed=1), "top_p must be a finite number"),
    "top_p of 0": (lambda m: generate(m, "Hello", top_p=0.0), r"top_p must be in \(0, 1\]"),
    "fractional top_k": (lambda m: generate(m, "Hello", top_k=2.5), "top_k must be a whole number"),
    "NaN steering coefficient": (lambda m: steer(m, vector(m), NAN).__enter__(), "coefficient must be a finite number"),
    "infinite coefficient in a spec": (
        lambda m: SteeringEvaluation(vector(m), 0, INF),
        "coefficient must be a finite number",
    ),
    "NaN in a sweep's coefficients": (
        lambda m: SteeringSweep(vector(m), (0,), (1.0, NAN)),
        "coefficient must be a finite number",
    ),
    "NaN temperature in a spec": (lambda m: SteeringEvaluation(vector(m), 0, 1.0, temperature=NAN), "temperature"),
    "a NaN DPO learning rate (handled)": (
        lambda m: DPORun(tuple(builtin_preferences()[:8]), learning_rate=NAN),
        "learning rate must be a finite number",
    ),
    "an infinite reward-model learning rate (handled)": (
        lambda m: RewardTrainingRun(tuple(builtin_preferences()[:20]), lr=INF),
        "learning rate must be a finite number",
    ),
    "vector times NaN": (lambda m: vector(m) * NAN, "scale of a steering vector must be a finite number"),
    "vector times infinity": (lambda m: INF * vector(m), "scale of a steering vector must be a finite number"),
    "vector divided by 0": (lambda m: vector(m) / 0, "Cannot divide a steering vector by 0"),
    "a vector of NaN": (
        lambda m: SteeringVector(layers=(0,), directions=torch.full((1, m.info.d_model), NAN)),
        r"NaN or infinite values \(at layer\(s\) \[0\]\)",
    ),
    "a vector whose d_model is not its width": (
        lambda m: SteeringVector(layers=(0,), directions=torch.ones(1, 100), d_model=576),
        "says it is 576 wide .d_model. but its directions are 100 wide",
    ),
    # texts
    "a bytes prompt": (lambda m: tokenize(m, b"Hello"), r"must be text \(str\), not bytes: decode it first"),
    "a bytes prompt to generate": (lambda m: generate(m, b"Hello"), "not bytes"),
    "a lone surrogate": (lambda m: tokenize(m, "ab\ud800cd"), r"lone surrogate '\\ud800' \(U\+D800\) at character 3"),
    "a lone surrogate to generate": (lambda m: generate(m, "Hi \udfff"), "lone surrogate"),
    "a prompt that is not text": (lambda m: next_token_predictions(m, 42), "must be text"),
    "a 100k-character prompt": (lambda m: tokenize(m, "a" * 100_000), "100,000 characters; the limit is 20,000"),
    "a prompt over the context (handled)": (lambda m: next_token_predictions(m, "word " * 400), "reads at most 256"),
    "a prompt plus new tokens over the context (handled)": (
        lambda m: generate(m, "Hello", max_new_tokens=10_000),
        "reads at most",
    ),
    "one prompt instead of a list": (lambda m: generate_batch(m, "Hello"), "as a list of texts"),
    "a bytes prompt in a spec's list": (
        lambda m: SteeringEvaluation(vector(m), 0, 1.0, prompts=(b"Hello",)),
        "prompts number 1 must be text",
    ),
    "too many prompts in a spec": (
        lambda m: SteeringEvaluation(vector(m), 0, 1.0, prompts=("Hi",) * 501),
        "501 prompts; the limit is 500",
    ),
    "bad token ids": (lambda m: tokenize(m, [1, -5]), "Token ids must be a non-empty list"),
    "a next-token spec with k=0 (handled)": (lambda m: NextTokenRun("Hello", k=0), "number of predictions must be from 1"),
    # contrast text and pairs
    "an ActAdd text over the token cap": (
        lambda m: actadd(m, LONG_TEXT, "Hate", [0]),
        rf"'towards' text is \d+ tokens; steering texts are limited to {MAX_TEXT_TOKENS} tokens each",
    ),
    "an empty ActAdd text": (lambda m: actadd(m, "Love", "  ", [0]), "'away from' text is empty"),
    "a pair text over the token cap": (
        lambda m: mean_difference(m, ContrastPairs("p", ("a", "b"), ("c", LONG_TEXT)), [0]),
        rf"negative text of pair 2 is \d+ tokens; steering texts are limited to {MAX_TEXT_TOKENS}",
    ),
    "a pair text over the character cap": (
        lambda m: ContrastPairs("p", ("a" * 5000, "b"), ("c", "d")),
        "positive text of pair 1 is 5,000 characters; the limit is 2,000",
    ),
    "too many pairs": (lambda m: ContrastPairs("p", ("a",) * 1001, ("b",) * 1001), f"1001 pairs; the limit is {MAX_PAIRS}"),
    "a pairs CSV with too many rows": (
        lambda m: read_pairs("big.csv", pairs_csv([("a", "b")] * (MAX_PAIRS + 1))),
        f"big.csv has {MAX_PAIRS + 1} pairs; the limit is {MAX_PAIRS}",
    ),
    "a pairs CSV with a bad quote (handled)": (
        lambda m: read_pairs("p.csv", b'positive,negative\n"I love,it\n'),
        r"p.csv, line \d+: .*Check the quotes",
    ),
    "a pairs CSV with a missing side (handled)": (
        lambda m: read_pairs("p.csv", b"positive,negative\nI love it,\nA,B\n"),
        "line 2: a pair needs both a positive and a negative text",
    ),
    "a pairs CSV that is not UTF-8 (handled)": (lambda m: read_pairs("p.csv", b"positive,negative\n\xff,b\n"), "not UTF-8"),
    # vector files
    "a vector 100 wide that claims 64": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(100)}, d_model="64"), m),
        r"v.safetensors: its metadata says d_model = '64' but its directions are 100 wide",
    ),
    "a vector of the wrong width (handled)": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(100)}), m),
        "v.safetensors: This vector is 100 wide but .* has d_model = 64",
    ),
    "malformed layer metadata": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(64)}, layers="{0"), m),
        "v.safetensors: its metadata does not list its layers",
    ),
    "layer metadata that is not a list": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(64)}, layers="7"), m),
        r"its metadata does not list its layers \('layers' is '7'",
    ),
    "non-numeric d_model metadata": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(64)}, d_model="wide"), m),
        "its metadata says d_model = 'wide'",
    ),
    "a bad hook point in metadata": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(64)}, hook_point="x"), m),
        "v.safetensors: Unknown hook point 'x'",
    ),
    "a layer list naming a missing tensor": (
        lambda m: load_vector("v.safetensors", safetensors_file({"direction.0": torch.ones(64)}, layers="[0, 1]"), m),
        r"its layer list and its tensors do not match \(missing \['direction.1'\]",
    ),
    "directions of different widths": (
        lambda m: load_vector(
            "v.safetensors", safetensors_file({"direction.0": torch.ones(64), "direction.1": torch.ones(32)}, layers="[0, 1]"), m
        ),
        "its directions have different widths",
    ),
    "a GGUF tensor name that is not direction.N": (
        lambda m: load_vector("v.gguf", gguf_file({"direction.one": np.ones(64)}), m),
        "v.gguf: tensor 'direction.one' should be named direction.N",
    ),
    "a GGUF that is not a GGUF (handled)": (lambda m: load_vector("v.gguf", b"not a gguf", m), "not a readable GGUF file"),
    "a 1-D .npy without a layer": (
        lambda m: load_vector("v.npy", npy_file(np.ones(64, dtype=np.float32)), m),
        r"v.npy holds one direction but no layers .*give the layer each row is added at \(e.g. 4",
    ),
    "a .npy with more layers than rows": (
        lambda m: load_vector("v.npy", npy_file(np.ones(64, dtype=np.float32)), m, layers=[0, 1]),
        "has 1 row.s. but 2 layer.s. were given; give one layer per row",
    ),
    "a pickled .npy (handled)": (lambda m: load_vector("v.npy", pickled_npy(), m, layers=[0]), "Pickled arrays are refused"),
    "a .npy of NaN (handled)": (
        lambda m: load_vector("v.npy", npy_file(np.full(64, NAN, dtype=np.float32)), m, layers=[0]),
        "v.npy: This vector contains NaN or infinite values",
    ),
    "a vector at a layer the model lacks (handled)": (
        lambda m: load_vector("v.npy", npy_file(np.ones(64, dtype=np.float32)), m, layers=[7]),
        r"Layer\(s\) \[7\] do not exist",
    ),
    "a huge-norm vector (handled)": (
        lambda m: load_vector("v.npy", npy_file(np.full(64, 1e12, dtype=np.float32)), m, layers=[0]),
        "over 1000x the model's typical residual norm",
    ),
    "a file of another type (handled)": (lambda m: load_vector("v.pt", pickle.dumps([1.0]), m), "unknown vector file type '.pt'"),
    # numbers typed into a box (the sweep's coefficients, a .npy's layers)
    "'nan' in a number box": (lambda m: parse_numbers("coefficients", "1, nan"), "'nan' is not a finite number"),
    "'inf' in a number box": (lambda m: parse_numbers("coefficients", "-inf"), "'-inf' is not a finite number"),
    "a word in a number box": (lambda m: parse_numbers("coefficients", "1, two"), "'two' is not a number"),
    "an empty number box": (lambda m: parse_numbers("coefficients", " , "), "at least one of the coefficients"),
    "a fractional layer": (lambda m: parse_ints("layers", "1.5"), r"must be whole numbers \(got 1.5\)"),
}


@pytest.mark.parametrize("call, message", API_CASES.values(), ids=API_CASES)
def test_a_bad_input_to_the_api_is_refused_with_what_to_fix(tiny_llama, call, message):
    weights = {name: p.detach().clone() for name, p in list(tiny_llama.hf_model.named_parameters())[:2]}
    with pytest.raises(InputError, match=message):
        call(tiny_llama)
    for name, p in list(tiny_llama.hf_model.named_parameters())[:2]:
        assert torch.equal(p, weights[name])  # the shared model is untouched
    from interp.hooks import count_hooks, model_busy

    assert count_hooks(tiny_llama) == 0 and model_busy(tiny_llama) is None  # and free


def test_a_vector_scaled_by_nan_is_left_as_it_was(tiny_llama):
    v = vector(tiny_llama)
    before = v.directions.clone()
    with pytest.raises(InputError):
        v * NAN
    assert torch.equal(v.directions, before)
    assert (v * 2.0).equals(dataclasses.replace(v, directions=before * 2))  # ordinary scaling still works


def test_a_vector_takes_its_width_from_its_tensor(tiny_llama):
    v = SteeringVector(layers=(0,), directions=torch.ones(1, tiny_llama.info.d_model))  # no d_model given
    assert v.d_model == tiny_llama.info.d_model and v.check_for(tiny_llama) == []


def test_a_one_direction_npy_is_applied_at_the_layer_given(tiny_llama):
    v = load_vector("v.npy", npy_file(np.ones(64, dtype=np.float32)), tiny_llama, layers=[1])
    assert v.layers == (1,) and v.d_model == 64


@pytest.mark.parametrize("text", ["- I love it", "+1 for this", "=SUM(A1)", "@everyone hello"])
def test_pairs_starting_like_a_formula_are_read_as_typed(text):
    pairs = read_pairs("p.csv", pairs_csv([(text, "I hate it"), ("Nice", "Bad")]))
    assert pairs.positive[0] == text


# --- the Steering page -------------------------------------------------------------------------------------------


def _errors(app) -> list[str]:
    return [visible_text(e.value) for e in app.error]


def test_the_pairs_editor_keeps_pairs_that_start_with_a_minus_or_equals(served, tiny, monkeypatch):
    import steering.make

    seen: list[ContrastPairs] = []
    original = steering.make.mean_difference

    def spy(model, pairs, *args, **kwargs):
        seen.append(pairs)
        return original(model, pairs, *args, **kwargs)

    monkeypatch.setattr(steering.make, "mean_difference", spy)
    rows = [("- I love it", "- I hate it"), ("=Great news", "@Bad news"), ("+1 wonderful", "Terrible (unique 7f3a)")]
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("pairs").run()
    app.file_uploader(key="steer_pairs_file").upload("pairs.csv", pairs_csv(rows)).run()
    assert_no_traceback(app)
    assert not app.error, _errors(app)
    assert seen and seen[-1].positive == tuple(p for p, _ in rows) and seen[-1].negative == tuple(n for _, n in rows)


@pytest.mark.parametrize(
    "typed, message",
    [("1, nan", "'nan' is not a finite number"), ("inf", "'inf' is not a finite number"), ("1, x", "'x' is not a number")],
)
def test_the_sweep_box_refuses_non_finite_coefficients_and_keeps_the_last_sweep(served, tiny, typed, message):
    app = open_page("pages/steering.py", **tiny)
    app.number_input(key="steer_samples").set_value(1).run()
    app.text_input(key="steer_sweep_coefficients").input("2").run()
    app.button(key="steer_sweep").click().run()
    assert not app.error, _errors(app)
    kept = app.session_state["steer_sweep_spec"]
    app.text_input(key="steer_sweep_coefficients").input(typed).run()
    app.button(key="steer_sweep").click().run()
    assert any(message in e for e in _errors(app)), _errors(app)
    assert app.session_state["steer_sweep_spec"] is kept  # the sweep on screen is not lost
    assert_no_traceback(app)


def test_a_long_actadd_text_is_refused_with_its_length_and_the_limit(served, tiny):
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("actadd").run()
    app.text_input(key="steer_actadd_pos").input(LONG_TEXT).run()
    assert any(f"steering texts are limited to {MAX_TEXT_TOKENS} tokens" in e for e in _errors(app)), _errors(app)
    assert_no_traceback(app)


def test_a_one_direction_npy_asks_for_its_layer_and_then_loads(served, tiny):
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("file").run()
    app.file_uploader(key="steer_vector_file").upload("v.npy", npy_file(np.ones(64, dtype=np.float32) * 0.1)).run()
    assert any("Layers of its rows" in e and "give the layer" in e for e in _errors(app)), _errors(app)
    app.text_input(key="steer_vector_file_layers").input("1").run()
    assert not app.error, _errors(app)
    assert any("numpy file v.npy" in visible_text(c.value) and "1 layers" in visible_text(c.value) for c in app.caption)
    assert_no_traceback(app)


def test_a_vector_file_claiming_another_width_is_refused_on_upload(served, tiny):
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("file").run()
    data = safetensors_file({"direction.0": torch.ones(100)}, d_model="64")
    app.file_uploader(key="steer_vector_file").upload("v.safetensors", data).run()
    assert any("d_model = '64' but its directions are 100 wide" in e for e in _errors(app)), _errors(app)
    assert_no_traceback(app)


# --- the command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, options, message",
    [
        (b'prompt\n"unclosed, quote\n', [], "line 2: unexpected end of data. Check the quotes"),
        (b"prompt\nabc\xff\n", [], "not UTF-8 text"),
        (b"prompt\nhello\n", ["--budget", "nan"], "invalid int value: 'nan'"),
    ],
    ids=["bad quotes (handled)", "not UTF-8 (handled)", "a NaN budget (handled)"],
)
def test_the_cli_refuses_bad_input_before_loading_the_model(tmp_path, content, options, message):
    prompts = tmp_path / "prompts.csv"
    prompts.write_bytes(content)
    out = tmp_path / "out.csv"
    done = subprocess.run(
        [sys.executable, "-m", "interp", "attribute", str(prompts), "--method", "shap", "--out", str(out), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and prompts.read_bytes() == content  # nothing written, the input untouched


# --- waiting for the shared model is said, with what it waits for -----------------------------------------------


def test_a_caller_waiting_for_the_model_hears_what_holds_it(tiny_llama):
    from interp.hooks import intervene, model_busy, on_wait, running

    holding, release = threading.Event(), threading.Event()

    def long_run() -> None:
        with running("Steering sweep"), intervene(tiny_llama):
            holding.set()
            release.wait(10)

    other = threading.Thread(target=long_run)
    other.start()
    holding.wait(10)
    heard: list = []
    try:
        assert model_busy(tiny_llama).description == "Steering sweep"
        threading.Timer(1.5, release.set).start()
        with on_wait(heard.append), running("Next-token predictions"):
            next_token_predictions(tiny_llama, "Hello", k=2)
    finally:
        release.set()
        other.join(10)
    waits = [h for h in heard if h is not None]
    assert waits and waits[0].description == "Steering sweep" and waits[-1].seconds >= 1.0
    assert heard[-1] is None  # told when the wait is over
    assert model_busy(tiny_llama) is None


def test_a_caller_that_does_not_wait_hears_nothing(tiny_llama):
    from interp.hooks import intervene, model_busy, on_wait, running

    heard: list = []
    with on_wait(heard.append), running("Attention"), intervene(tiny_llama):
        assert model_busy(tiny_llama).description == "Attention"
        with intervene(tiny_llama):  # nested in the same run: the same holder
            assert model_busy(tiny_llama).description == "Attention"
    assert heard == [] and model_busy(tiny_llama) is None


def test_the_waiting_notice_names_the_run_and_its_age():
    from interp.hooks import LockHolder
    from ui.waiting import waiting_message

    holder = LockHolder("Steering sweep", time.monotonic() - 12.2, 1)
    assert waiting_message(holder) == "Waiting for another session's steering sweep to finish (started 12 s ago)."
    assert "DPO training" in waiting_message(LockHolder("DPO training", time.monotonic(), 1))
    assert r"\[x\](http" in waiting_message(LockHolder("[x](http://e.example)", time.monotonic(), 1))  # escaped
