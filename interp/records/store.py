"""Where kept runs live: MLflow tracking, a local SQLite database by default.

Runs live under ``$STEERSCOPE_DATA`` (default ``./data``), no server; set ``STEERSCOPE_TRACKING_URI`` to
use your own tracking server. Saving is all-or-nothing: the run's files are written to a temporary
folder first, then logged, then the run is marked finished; a failure deletes the half-made run, and
only finished runs are listed, so an interrupted save never shows up or disturbs earlier runs. Saves
are serialised across threads and processes with a lock file.

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
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interp.errors import InputError, SteerscopeError
from interp.records.record import RunRecord, data_folder
from interp.runs.spec import RunSpec
from interp.serialise import dumps, loads

EXPERIMENT = "steerscope"
_thread_lock = threading.Lock()


class RunStore:
    """Runs in MLflow tracking (a local SQLite store by default)."""

    def __init__(self, uri: str | None = None) -> None:
        folder = data_folder()
        self.uri = uri or os.environ.get("STEERSCOPE_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}"
        self.lock_path = folder / "records.lock"
        self._artifacts = folder / "artifacts"
        self._client = None

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
            hint = "the disk is full" if getattr(exc, "errno", None) == 28 else "the data folder is not writable"
            raise InputError(
                f"Could not {action}: {hint} ({exc.strerror or exc}). Free space or make {data_folder()} writable, "
                "or set STEERSCOPE_DATA / STEERSCOPE_TRACKING_URI to another location. Earlier runs are untouched."
            ) from None
        except Exception as exc:  # MLflow and SQLAlchemy raise many types for storage problems
            raise InputError(f"Could not {action}: {type(exc).__name__}: {str(exc)[:300]}. Earlier runs are untouched.") from None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with _thread_lock:
            if self.uri.startswith("sqlite:///"):
                self.lock_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.lock_path, "w") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)
            else:
                yield

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        location = self._artifacts.as_uri() if self.uri.startswith("sqlite:///") else None
        return self.client.create_experiment(EXPERIMENT, artifact_location=location)

    def save(self, record: RunRecord, figures: dict[str, Any] | None = None) -> str:
        """Keep a run; returns its id. All-or-nothing (see the module docstring)."""
        with self._guard("save the run"), self._exclusive():
            if record.spec is None:
                raise InputError("Only a run with its spec can be kept (build the run's spec and keep that).")
            document = record_document(record)
            spec_json, spec_blob = dumps(record.spec)
            result_json, result_blob = dumps(record.result)
            run = self.client.create_run(
                self._experiment_id(),
                run_name=f"{record.kind} {record.finished[:19]}",
                tags={
                    "kind": record.kind,
                    "model": record.model_name,
                    "weights_sha256": record.weights_sha256,
                    "note": record.note[:5000],
                },
            )
            run_id = run.info.run_id
            try:
                with tempfile.TemporaryDirectory() as folder:
                    Path(folder, "record.json").write_text(json.dumps(document, indent=1))
                    for stem, (text, blob) in (("spec", (spec_json, spec_blob)), ("result", (result_json, result_blob))):
                        Path(folder, f"{stem}.json").write_text(text)
                        if blob:
                            Path(folder, f"{stem}.safetensors").write_bytes(blob)
                    for name, figure in (figures or {}).items():
                        Path(folder, f"{name}.html").write_text(figure.to_html(include_plotlyjs=True, full_html=True))
                    self.client.log_artifacts(run_id, folder)
                for key, value in _flat_params(record.settings).items():
                    self.client.log_param(run_id, key, value)
                self.client.set_terminated(run_id, "FINISHED")
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.delete_run(run_id)
                raise
        return run_id

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
