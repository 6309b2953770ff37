"""Fault injection: what a kill, a full or read-only disk, two saving processes or a failing hook leave behind.

Each test breaks something on purpose, then checks what the user is told and that nothing was lost
or changed: every run saved before still loads with its numbers, no half-written file stays on disk,
the store's lock is free, and a model whose hook failed gives the same numbers as before.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from interp import InputError
from interp.lens import LogitLensRun
from interp.records import Bundle, RunRecord, RunStore, numbers_of

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "When Mary and John went to the store, John gave a drink to"


def record_of(note: str, seed: int, size: int = 1_000) -> RunRecord:
    """A keepable run with a result of ``size`` random numbers fixed by ``seed`` (no model needed)."""
    values = torch.randn(size, generator=torch.Generator().manual_seed(seed))
    return RunRecord(
        "logit_lens", LogitLensRun(PROMPT, " Mary"), "tiny", "", "0" * 64, Bundle({"values": values}), note, finished="2025"
    )


def checksum(record: RunRecord) -> float:
    return float(numbers_of(record.result).sum())


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("STEERSCOPE_DATA", str(folder))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    return folder


@pytest.fixture()
def earlier(data: Path) -> dict[str, float]:
    """Two runs saved before the fault: run id -> checksum of its result."""
    store = RunStore()
    return {store.save(record_of(f"earlier {i}", seed=i)): checksum(record_of("", seed=i)) for i in range(2)}


def assert_intact(store: RunStore, earlier: dict[str, float], data: Path) -> None:
    """Exactly the earlier runs are listed, each loads with its numbers, nothing is left unfinished or staged."""
    assert {r.run_id for r in store.list()} == set(earlier)
    for run_id, expected in earlier.items():
        assert checksum(store.load(run_id)) == expected
    experiment = store.client.get_experiment_by_name("steerscope")
    unfinished = store.client.search_runs([experiment.experiment_id], "attributes.status != 'FINISHED'")
    assert not unfinished, [run.info.status for run in unfinished]
    assert sorted(p.name for p in (data / "artifacts").iterdir()) == sorted(earlier)  # no files of another run
    assert not any((data / "saving").iterdir())


def assert_lock_free(data: Path) -> None:
    with open(data / "records.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if a dead save still held it
        fcntl.flock(handle, fcntl.LOCK_UN)


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, **kwargs)


# --- kill -9 during a save --------------------------------------------------------------------------------------------

SAVE_THEN_HANG = """
import shutil, sys, time
from pathlib import Path
from interp.records import RunStore
from tests.reliability.test_faults import record_of

original, copied = shutil.copy2, []

def copy_then_hang(source, target, **kwargs):  # the second file is half-copied when the kill comes
    if copied:
        data = Path(source).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        Path(sys.argv[1]).touch()
        time.sleep(600)
    copied.append(source)
    return original(source, target, **kwargs)

shutil.copy2 = copy_then_hang
RunStore().save(record_of("half-saved", seed=9, size=2_000_000))
"""


def test_kill_9_during_a_save_loses_nothing_and_the_half_saved_run_is_removed(data, earlier, tmp_path):
    marker = tmp_path / "inside-log-artifacts"
    saver = python(SAVE_THEN_HANG, str(marker), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert saver.poll() is None, saver.stderr.read()
        assert time.monotonic() < deadline, "the save never reached its artifacts"
        time.sleep(0.1)
    assert RunStore().cleanup() == ()  # a save still under way is left alone
    saver.send_signal(signal.SIGKILL)
    saver.wait(timeout=30)
    saver.stderr.close()

    assert_lock_free(data)
    store = RunStore()
    assert {r.run_id for r in store.list()} == set(earlier)  # the half-saved run is never listed
    experiment = store.client.get_experiment_by_name("steerscope")
    (half,) = store.client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    assert (data / "artifacts" / half.info.run_id).is_dir() and any((data / "saving").iterdir())  # what the kill left

    (removed,) = store.cleanup()
    assert (removed.run_id, removed.kind, removed.note) == (half.info.run_id, "logit_lens", "half-saved")
    assert abs(dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(removed.started)) < dt.timedelta(minutes=5)
    assert_intact(store, earlier, data)
    assert store.cleanup() == ()  # done once
    assert checksum(store.load(store.save(record_of("after", seed=5)))) == checksum(record_of("", seed=5))
    assert_lock_free(data)


def test_the_experiments_page_says_an_unfinished_save_was_removed(data, earlier, tiny, served):
    """What a kill leaves (a RUNNING run with files, a staging folder), then the page opened as a user would."""
    from tests.reliability.conftest import assert_no_traceback, open_page
    from ui.records import run_store

    store = RunStore()
    experiment = store.client.get_experiment_by_name("steerscope")
    half = store.client.create_run(experiment.experiment_id, tags={"kind": "logit_lens", "note": "half-saved"})
    store.client.log_text(half.info.run_id, "partial", "result.json")
    (data / "saving" / "run-killed").mkdir(parents=True)
    run_store.clear()
    try:
        app = open_page("pages/experiments.py", **tiny)
    finally:
        run_store.clear()
    started = time.strftime("%H:%M", time.gmtime(half.info.start_time / 1000))
    notes = [info.value for info in app.info]
    assert any(note.startswith(f"1 unfinished save from {started} UTC was removed") for note in notes), notes
    assert_no_traceback(app)
    assert sorted(app.dataframe[0].value["run"]) == sorted(run_id[:8] for run_id in earlier)
    assert_intact(store, earlier, data)
    app.run()  # the note stays on screen across reruns of the session
    assert any("1 unfinished save" in info.value for info in app.info)


# --- full and read-only disks -----------------------------------------------------------------------------------------


def _full_while_staging(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Path.write_bytes

    def write_half(self: Path, data: bytes) -> int:
        original(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", write_half)


def _full_while_copying(monkeypatch: pytest.MonkeyPatch) -> None:
    original, copied = shutil.copy2, []

    def copy_until_full(source, target, **kwargs):
        if copied:
            Path(target).write_bytes(Path(source).read_bytes()[:100])
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        copied.append(source)
        return original(source, target, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy_until_full)


def _full_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def full(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database or disk is full")

    monkeypatch.setattr(MlflowClient, "log_param", full)


@pytest.mark.parametrize("fill", [_full_while_staging, _full_while_copying, _full_database], ids=["staging", "copying", "db"])
def test_a_full_disk_says_so_and_leaves_no_partial_files(data, earlier, fill):
    store = RunStore()
    with pytest.MonkeyPatch.context() as patch, pytest.raises(InputError) as caught:
        fill(patch)
        store.save(record_of("lost", seed=7, size=100_000))
    message = str(caught.value)
    assert message.startswith("Could not save the run: the disk is full") and "Earlier runs are untouched." in message
    assert str(data) in message
    assert_intact(store, earlier, data)
    assert store.cleanup() == ()  # the failed save cleaned up after itself: nothing is left for later
    assert_lock_free(data)


READ_ONLY_SESSION = """
import json, os
from interp import InputError
from interp.records import RunStore
from tests.reliability.test_faults import checksum, record_of

store = RunStore()
listed = {r.run_id: r.note for r in store.list()}
try:
    store.save(record_of("refused", seed=3))
    message = None
except InputError as exc:
    message = str(exc)
print(json.dumps({"listed": listed, "loaded": {i: checksum(store.load(i)) for i in listed}, "cleanup": len(store.cleanup()),
                  "message": message}))
"""


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _read_only(data: Path) -> list[str]:
    """Make ``data`` read-only for real; returns the prefix a command must run under to see it so.

    Without root the folder's permissions do it. Root may write anywhere, so there the session runs in its own
    mount namespace with the folder bind-mounted read-only (the writes fail with EROFS, as on a read-only disk).
    """
    if os.geteuid() != 0:
        for path in [data, *data.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return []
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    # Debian's util-linux has unshare; as root there is no other honest way to get a read-only folder.
    assert probe is not None and probe.returncode == 0, "as root this test needs `unshare -rm` (util-linux) to mount read-only"
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(data)]


def test_a_read_only_data_folder_keeps_its_runs_readable_and_says_why_saving_fails(data, earlier):
    before = _tree(data)
    prefix = _read_only(data)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", READ_ONLY_SESSION], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
    finally:
        for path in [data, *data.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["listed"] == {run_id: f"earlier {i}" for i, run_id in enumerate(earlier)}
    assert seen["loaded"] == earlier
    assert seen["cleanup"] == 0
    assert seen["message"].startswith("Could not save the run: the data folder is not writable"), seen["message"]
    assert f"make {data} writable" in seen["message"] and "Earlier runs are untouched." in seen["message"]
    assert _tree(data) == before  # nothing written, nothing changed


# --- two processes saving at once -------------------------------------------------------------------------------------

SAVE_FIVE = """
import sys, time
from pathlib import Path
from interp.records import RunStore
from tests.reliability.test_faults import record_of

process, go = int(sys.argv[1]), Path(sys.argv[2])
store = RunStore()
while not go.exists():
    time.sleep(0.01)
for i in range(5):
    print(store.save(record_of(f"process {process} run {i}", seed=100 * process + i, size=50_000)), flush=True)
"""


def test_two_processes_saving_at_once_keep_all_ten_runs_whole(data, tmp_path):
    go = tmp_path / "go"
    savers = [python(SAVE_FIVE, str(p), str(go), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in (1, 2)]
    time.sleep(1)  # both import while waiting; the go file starts them together
    go.touch()
    ids = {}
    for p, saver in enumerate(savers, start=1):
        out, err = saver.communicate(timeout=300)
        assert saver.returncode == 0, err
        ids.update({run_id: (p, i) for i, run_id in enumerate(out.split())})
    assert len(ids) == 10
    store = RunStore()
    listed = {r.run_id: r.note for r in store.list()}
    assert listed == {run_id: f"process {p} run {i}" for run_id, (p, i) in ids.items()}
    for run_id, (p, i) in ids.items():
        loaded = store.load(run_id)
        assert loaded.note == f"process {p} run {i}"  # metadata and result belong to the same save
        assert np.array_equal(numbers_of(loaded.result), numbers_of(record_of("", seed=100 * p + i, size=50_000).result))
    assert_intact(store, {run_id: checksum(store.load(run_id)) for run_id in ids}, data)
    assert_lock_free(data)


# --- an exception inside every kind of hook ---------------------------------------------------------------------------


def _steered_generation(model):
    from interp.generation import generate
    from steering.apply import steer
    from tests.steering.test_vector import make

    with steer(model, make(model, layers=(1,), scale=4.0), 1.0):
        return np.array(generate(model, PROMPT, max_new_tokens=6, stop_at_eos=False).token_ids)


def _task(model):
    from interp.circuits.tasks import custom_task

    return custom_task(model, PROMPT, PROMPT.replace("John gave", "Mary gave"), " Mary", " John")


def _ablation(model):
    from interp.circuits import Component, ablate

    task = _task(model)
    return numbers_of(ablate(model, task.clean, [Component("head", 1, 0)], task.metric, method="zero"))


def _activation_patching(model):
    from interp.circuits import patch_sweep

    task = _task(model)
    return numbers_of(patch_sweep(model, task.clean, task.corrupted, task.metric, "heads"))


def _attribution_patching(model):
    from interp.circuits.patching import attribution_patch

    task = _task(model)
    return numbers_of(attribution_patch(model, task.clean, task.corrupted, task.metric, "heads"))


def _recording(model):
    from interp.attention import attention_patterns

    return numbers_of(attention_patterns(model, PROMPT))


def _embedding_replacement(model):
    from interp.attribution import Target, attribute

    return numbers_of(attribute(model, PROMPT, Target.contrast(" Mary", " John"), "integrated_gradients"))


# (what is run, the hook function that fails — its qualified name — and at which of its calls)
HOOK_KINDS = {
    "steering": (_steered_generation, "addition_hook.<locals>.add", 3),  # the third: mid-generation, with a KV cache
    "ablation": (_ablation, "ablate.<locals>.make.<locals>.replace", 1),
    "activation patching": (_activation_patching, "replacement_hooks.<locals>.make.<locals>.replace", 1),
    "attribution patching": (_attribution_patching, "attribution_patch.<locals>.keep", 1),
    "recording": (_recording, "record.<locals>.keep", 1),
    "attribution's embedding replacement": (_embedding_replacement, "Evaluator.from_token_embeddings.<locals>.replace", 2),
}


def _lock_is_free_for_another_thread(model) -> bool:
    """Whether another thread can take the model's lock now (it is reentrant: this thread's own try would always win)."""
    taken = []

    def take() -> None:
        if model.lock.acquire(timeout=5):
            taken.append(True)
            model.lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout=10)
    return bool(taken)


@pytest.mark.parametrize("kind", list(HOOK_KINDS))
def test_an_exception_inside_a_hook_leaves_no_hook_and_the_next_run_is_unchanged(tiny_llama, monkeypatch, kind):
    import interp.hooks
    from interp.hooks import count_hooks

    run, failing, at = HOOK_KINDS[kind]
    model = tiny_llama
    before = run(model)
    calls = []
    original = interp.hooks._pytorch_hook

    def faulty(model, hook_point, name, fn, hook_run):
        if fn.__qualname__ != failing:
            return original(model, hook_point, name, fn, hook_run)

        def explode(activation, site):
            replaced = fn(activation, site)  # the real hook runs, then fails as a bug in it would
            calls.append(site.name)
            if len(calls) == at:
                raise RuntimeError(f"injected fault in the hook at {site.name}")
            return replaced

        return original(model, hook_point, name, explode, hook_run)

    with monkeypatch.context() as patch:
        patch.setattr(interp.hooks, "_pytorch_hook", faulty)
        with pytest.raises(RuntimeError, match=r"^injected fault in the hook at (blocks\.\d+\.|hook_embed)"):
            run(model)
    assert len(calls) == at, f"the {failing} hook was called {len(calls)} time(s)"
    assert count_hooks(model) == 0
    assert model.position_offset == 0
    assert _lock_is_free_for_another_thread(model), "the model's lock is still held"
    assert np.array_equal(run(model), before)  # the same numbers as before the failure, bitwise


# --- the command line's results ---------------------------------------------------------------------------------------

PROMPTS = "prompt\nWhen Mary and John went to the store John gave a drink to\nThe capital of France is\n"


@pytest.fixture()
def prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    path = tmp_path / "prompts.csv"
    path.write_text(PROMPTS)
    return path


def _bad_outputs(tmp_path: Path, prompts: Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "a-folder").mkdir()
    return {
        "--out in a missing folder": (
            ["--out", str(tmp_path / "missing" / "results.csv")],
            f"The folder {tmp_path / 'missing'} for the results CSV (--out) does not exist: create it or choose another path.",
        ),
        "--json in a missing folder": (
            ["--out", str(tmp_path / "results.csv"), "--json", str(tmp_path / "missing" / "results.json")],
            f"The folder {tmp_path / 'missing'} for the results JSON (--json) does not exist",
        ),
        "--out is a folder": (
            ["--out", str(tmp_path / "a-folder")],
            f"The results CSV (--out) {tmp_path / 'a-folder'} is a folder",
        ),
        "--out under a file": (
            ["--out", str(prompts / "results.csv")],
            f"The folder {prompts} for the results CSV (--out) is a file",
        ),
        "--out is the prompt file": (["--out", str(prompts)], f"The results CSV (--out) {prompts} is the prompt file"),
        "--json is --out": (
            ["--out", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.csv")],
            f"The results JSON (--json) {tmp_path / 'r.csv'} is also the results CSV (--out)",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["--out in a missing folder", "--json in a missing folder", "--out is a folder", "--out under a file",
     "--out is the prompt file", "--json is --out"],
)  # fmt: skip
def test_the_cli_checks_every_output_path_before_it_runs(tmp_path, prompts, monkeypatch, capsys, case):
    import interp
    from interp.__main__ import main

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output paths were checked")

    monkeypatch.setattr(interp, "load_model", never)
    args, message = _bad_outputs(tmp_path, prompts)[case]
    before = _tree(tmp_path)
    assert main(["attribute", str(prompts), "--method", "ablation", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1, err
    assert _tree(tmp_path) == before and prompts.read_text() == PROMPTS  # nothing written, the prompts untouched


def test_the_cli_refuses_a_read_only_output_folder_before_it_runs(tmp_path, prompts):
    out = tmp_path / "out"
    out.mkdir()
    prefix = _read_only(out)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "interp", "attribute", str(prompts), "--method", "ablation",
             "--model", str(tmp_path / "never-loaded"), "--out", str(out / "results.csv")],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        out.chmod(0o700)
    assert done.returncode == 2, done.stderr
    reason = "the folder is not writable. Choose another folder."
    assert done.stderr.strip() == f"error: Cannot write the results CSV (--out) in {out}: {reason}"
    assert not any(out.iterdir())


def test_results_are_written_whole_or_kept_elsewhere_when_the_disk_fills_at_the_end(
    tmp_path, prompts, tiny_llama_dir, monkeypatch, capsys
):
    import pandas as pd

    from interp.__main__ import main

    out = tmp_path / "results.csv"
    out.write_text("the previous results\n")
    real_fsync, synced = os.fsync, []

    def full_once(descriptor: int) -> None:  # the first output fills the disk; the rescue copy and the JSON fit
        synced.append(descriptor)
        if len(synced) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_once)
    argv = ["attribute", str(prompts), "--method", "ablation", "--model", str(tiny_llama_dir), "--out", str(out)]
    assert main([*argv, "--json", str(tmp_path / "results.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    rescued = Path(tempfile.gettempdir()) / f"steerscope-{os.getpid()}-results.csv"
    try:
        assert err == (
            f"error: Could not write the results CSV (--out) {out}: the disk is full. It was written to {rescued} instead."
        )
        assert len(pd.read_csv(rescued)) == 2  # every result kept
        assert out.read_text() == "the previous results\n"  # never half a file
        assert len(json.loads((tmp_path / "results.json").read_text())) == 2  # the other output is unaffected
        assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.csv", "results.csv", "results.json"]  # no .part file left
    finally:
        rescued.unlink(missing_ok=True)
