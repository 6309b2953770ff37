"""Where kept runs live: MLflow tracking, a local SQLite database by default.

Runs live under ``$STEERSCOPE_DATA`` (default ``./data``), no server; set ``STEERSCOPE_TRACKING_URI`` to
use your own tracking server. Saving is all-or-nothing: the run's files are written to a staging
folder (``saving/`` in the data folder) first, then logged, then the run is marked finished; a failure
deletes the half-made run *and its files* (MLflow's own delete keeps them, and a save that filled the
disk would leave it full), and only finished runs are listed, so an interrupted save never shows up or
disturbs earlier runs. Saves are serialised across threads and processes with a lock file held from the
first write to the last.

A save killed outright (``kill -9``, a crash, the power) cannot clean up after itself: its run stays
``RUNNING`` and its files stay on disk. :meth:`RunStore.cleanup` finds such runs — while it holds the
lock no save is under way, so any run still unfinished belongs to a save that died — removes them and
their files, and returns what it removed so the caller can say so (the Experiments page calls it).

Each run's artifacts: ``record.json`` (model, weights hash, versions, times, note), ``spec.json`` +
``spec.safetensors`` (the run's typed settings) and ``result.json`` + ``result.safetensors`` — all
written by :mod:`interp.serialise`, never pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interp.errors import InputError, SteerscopeError
from interp.records.record import RunRecord, data_folder
from interp.runs.spec import RunSpec
from interp.serialise import dumps, loads

EXPERIMENT = "steerscope"
SAVER_TAG = "steerscope.saver"  # "host:pid" of the process saving the run: with no lock file, who may still finish it
_thread_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class UnfinishedSave:
    """A run whose save never finished (its process was killed while saving), removed by :meth:`RunStore.cleanup`."""

    run_id: str
    kind: str
    started: str  # when the save began, ISO 8601 in UTC
    note: str = ""


class RunStore:
    """Runs in MLflow tracking (a local SQLite store by default)."""

    def __init__(self, uri: str | None = None) -> None:
        folder = data_folder()
        self.uri = uri or os.environ.get("STEERSCOPE_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}"
        self.lock_path = folder / "records.lock"
        self._artifacts = folder / "artifacts"
        self._staging = folder / "saving" if self._local else None  # None: the system's temp folder
        self._client = None

    @property
    def _local(self) -> bool:
        return self.uri.startswith("sqlite:///")

    @property
    def client(self):
        if self._client is None:
            import logging

            import mlflow

            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            if self.uri.startswith("sqlite:///"):
                Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            with self._guard("open the run store"):
                self._client = mlflow.MlflowClient(tracking_uri=self.uri)
        return self._client

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn storage failures into messages that say what to do."""
        try:
            yield
        except SteerscopeError:
            raise
        except OSError as exc:
            hint = "the disk is full" if _disk_full(exc) else "the data folder is not writable"
            raise InputError(
                f"Could not {action}: {hint} ({exc.strerror or exc}). Free space or make {data_folder()} writable, "
                "or set STEERSCOPE_DATA / STEERSCOPE_TRACKING_URI to another location. Earlier runs are untouched."
            ) from None
        except Exception as exc:  # MLflow and SQLAlchemy raise many types for storage problems
            if _disk_full(exc):  # SQLite's "database or disk is full" arrives wrapped, without an errno
                raise InputError(
                    f"Could not {action}: the disk is full. Free space on the disk holding {data_folder()}, or set "
                    "STEERSCOPE_DATA / STEERSCOPE_TRACKING_URI to another location. Earlier runs are untouched."
                ) from None
            raise InputError(f"Could not {action}: {type(exc).__name__}: {str(exc)[:300]}. Earlier runs are untouched.") from None

    @contextlib.contextmanager
    def _exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the store's lock (threads and processes); yields False, holding nothing, if ``wait`` is False and it is busy.

        The operating system releases a ``flock`` when its process dies, however it dies, so a killed save
        never leaves the store locked.
        """
        if not _thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            if not self._local:
                yield True
                return
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.lock_path, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            _thread_lock.release()

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        location = self._artifacts.as_uri() if self._local else None
        return self.client.create_experiment(EXPERIMENT, artifact_location=location)

    def save(self, record: RunRecord, figures: dict[str, Any] | None = None) -> str:
        """Keep a run; returns its id. All-or-nothing (see the module docstring)."""
        if record.spec is None:
            raise InputError("Only a run with its spec can be kept (build the run's spec and keep that).")
        with self._guard("save the run"), self._exclusive(), self._staged(record, figures) as folder:
            run = self.client.create_run(
                self._experiment_id(),
                run_name=f"{record.kind} {record.finished[:19]}",
                tags={
                    "kind": record.kind,
                    "model": record.model_name,
                    "weights_sha256": record.weights_sha256,
                    "note": record.note[:5000],
                    SAVER_TAG: _this_process(),
                },
            )
            try:
                self.client.log_artifacts(run.info.run_id, str(folder))
                for key, value in _flat_params(record.settings).items():
                    self.client.log_param(run.info.run_id, key, value)
                self.client.set_terminated(run.info.run_id, "FINISHED")
            except BaseException:
                self._discard(run, quiet=True)  # quiet: the failure being raised is the one to report
                raise
        return run.info.run_id

    @contextlib.contextmanager
    def _staged(self, record: RunRecord, figures: dict[str, Any] | None) -> Iterator[Path]:
        """A folder holding the run's files, removed afterwards whatever happens (a full disk included)."""
        document = record_document(record)
        spec_json, spec_blob = dumps(record.spec)
        result_json, result_blob = dumps(record.result)
        if self._staging is not None:
            self._staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="run-", dir=self._staging, ignore_cleanup_errors=True) as name:
            folder = Path(name)
            (folder / "record.json").write_text(json.dumps(document, indent=1))
            for stem, (text, blob) in (("spec", (spec_json, spec_blob)), ("result", (result_json, result_blob))):
                (folder / f"{stem}.json").write_text(text)
                if blob:
                    (folder / f"{stem}.safetensors").write_bytes(blob)
            for name, figure in (figures or {}).items():
                (folder / f"{name}.html").write_text(figure.to_html(include_plotlyjs=True, full_html=True))
            yield folder

    def cleanup(self) -> tuple[UnfinishedSave, ...]:
        """Remove what saves that never finished left behind; returns the runs removed, oldest first.

        With the local store this takes the lock without waiting: while it is held no save is under way, so
        every run still unfinished was left by a save that died, and every staging folder is an orphan. If a
        save is under way now, or the data folder is read-only, nothing is done (a later call cleans up).
        With a tracking server (no lock file) only runs started by a dead process of this machine are removed.
        Runs deleted after a failed save lose any files they still have; finished runs are never touched.

        Example:
            >>> [f"{save.kind} from {save.started}" for save in RunStore().cleanup()]
            ['logit_lens from 2025-01-31T12:03:10+00:00']
        """
        try:
            with self._exclusive(wait=False) as held:
                return self._remove_unfinished() if held else ()
        except OSError:  # the lock file cannot be made (a read-only data folder): nothing can be removed anyway
            return ()

    def _remove_unfinished(self) -> tuple[UnfinishedSave, ...]:
        from mlflow.entities import LifecycleStage, ViewType

        with self._guard("clean up unfinished saves"):
            if self._staging is not None and self._staging.is_dir():
                for leftover in self._staging.iterdir():
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                return ()
            runs = self.client.search_runs(
                [experiment.experiment_id],
                filter_string="attributes.status != 'FINISHED'",
                run_view_type=ViewType.ALL,
                order_by=["attributes.start_time ASC"],
                max_results=1000,
            )
            removed = []
            for run in runs:
                if not (self._local or _saver_is_dead(run.data.tags.get(SAVER_TAG, ""))):
                    continue
                if run.info.lifecycle_stage == LifecycleStage.ACTIVE:
                    tags = run.data.tags
                    started = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).isoformat(timespec="seconds")
                    removed.append(UnfinishedSave(run.info.run_id, tags.get("kind", "?"), started, tags.get("note", "")))
                self._discard(run, quiet=False)
            return tuple(removed)

    def _discard(self, run: Any, *, quiet: bool) -> None:
        """Delete a run that never finished, files first: they are what fills a disk, and the database may be full too."""
        from mlflow.entities import LifecycleStage

        folder = _run_folder(run)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=quiet)
        steps = [lambda: self.client.set_terminated(run.info.run_id, "FAILED")] if run.info.status == "RUNNING" else []
        if run.info.lifecycle_stage == LifecycleStage.ACTIVE:
            steps.append(lambda: self.client.delete_run(run.info.run_id))
        for step in steps:
            if quiet:  # a run left RUNNING here is removed by the next cleanup
                with contextlib.suppress(Exception):
                    step()
            else:
                step()

    def list(self, kind: str | None = None, text: str = "") -> list[RunRecord]:
        """Finished runs, newest first, without their results (cheap); filter by kind and note/model text."""
        with self._guard("list the runs"):
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                return []
            query = "attributes.status = 'FINISHED'" + (f" and tags.kind = '{kind}'" if kind else "")
            runs = self.client.search_runs(
                [experiment.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=500
            )
        records = []
        for run in runs:
            tags = run.data.tags
            record = RunRecord(
                tags.get("kind", "?"),
                None,
                tags.get("model", ""),
                "",
                tags.get("weights_sha256", ""),
                None,
                tags.get("note", ""),
                {},
                "",
                dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).isoformat(),
                run.info.run_id,
                dict(run.data.params),
            )
            if text and text.lower() not in (record.note + " " + record.model_name + " " + json.dumps(record.settings)).lower():
                continue
            records.append(record)
        return records

    def load(self, run_id: str) -> RunRecord:
        """A run with its result."""
        with self._guard("read the run"), tempfile.TemporaryDirectory() as folder:
            path = Path(self.client.download_artifacts(run_id, "", folder))
            document = json.loads((path / "record.json").read_text())
            result = _load_value(path, "result")
            spec = _load_value(path, "spec") if (path / "spec.json").exists() else None
        if spec is not None and not isinstance(spec, RunSpec):
            raise InputError(f"Run {run_id} names {type(spec).__name__} as its spec, which is not a kind of run; not loaded.")
        return _record_from_document(document, spec, result, run_id)


def _disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == 28 or any(text in str(exc) for text in ("disk is full", "No space left"))


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _saver_is_dead(saver: str) -> bool:
    """Whether the ``host:pid`` that started a save is a process of this machine that no longer runs."""
    host, _, pid = saver.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _run_folder(run: Any) -> Path | None:
    """The local folder holding a run's files (``<artifacts>/<run id>``), or None if they are not on this disk.

    Only a folder named after the run is ever returned, so removing it cannot reach anything else.
    """
    uri = run.info.artifact_uri or ""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(urllib.request.url2pathname(parsed.path))
    folder = path.parent if path.name == "artifacts" else path
    return folder if folder.name == run.info.run_id and folder.is_dir() else None


def _load_value(path: Path, stem: str) -> Any:
    blob_path = path / f"{stem}.safetensors"
    return loads((path / f"{stem}.json").read_text(), blob_path.read_bytes() if blob_path.exists() else b"")


def _flat_params(values: dict[str, Any]) -> dict[str, str]:
    flat = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[key[:250]] = text[:6000]
    return flat


def record_document(record: RunRecord) -> dict:
    """The record's metadata as JSON (the spec and result are stored beside it)."""
    document = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name not in ("spec", "result", "run_id")}
    document["params"] = record.settings
    return json.loads(json.dumps(document, default=str))


def _record_from_document(document: dict, spec: RunSpec | None, result: Any, run_id: str) -> RunRecord:
    if spec is None and "inputs" in document:  # kept before runs were typed: settings shown, not replayable
        old = {**document.pop("inputs"), **document.pop("settings", {}), "seed": document.pop("seed", None)}
        document = {**document, "params": old}
    names = {f.name for f in dataclasses.fields(RunRecord)}
    try:
        return RunRecord(**{k: v for k, v in document.items() if k in names}, spec=spec, result=result, run_id=run_id)
    except TypeError as exc:
        raise InputError(f"Run {run_id} has a record this version cannot read ({exc}).") from None
