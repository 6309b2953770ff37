"""Research-grade records: keep a run, replay it, compare two, export a report.

A run is everything needed to say what was done and to do it again: the kind of analysis, its
inputs and settings, the seed, the model's name and weights hash, library versions, timestamps,
the result (serialised without pickle by :mod:`interp.serialise`) and a note. Runs live in MLflow
tracking — by default a SQLite database and artifact folder under ``$STEERSCOPE_DATA`` (default
``./data``), no server; set ``STEERSCOPE_TRACKING_URI`` to use your own tracking server.

Saving is all-or-nothing: the run's files are written to a temporary folder first, then logged,
then the run is marked finished; a failure deletes the half-made run, and only finished runs are
listed, so an interrupted save never shows up or disturbs earlier runs. Saves are serialised
across threads and processes with a lock file.

Replay re-executes a run from its record with the analysis function registered for its kind and
compares the new result with the stored one: bitwise for deterministic analyses on the CPU, or
within the kind's stated tolerance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import importlib.metadata
import io
import json
import os
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import InputError, SteerscopeError
from interp.loading import LoadedModel
from interp.serialise import dumps, loads

EXPERIMENT = "steerscope"
LIBRARIES = ("torch", "transformers", "transformer-lens", "shap", "captum", "streamlit", "trl", "peft")
_thread_lock = threading.Lock()


def data_folder() -> Path:
    return Path(os.environ.get("STEERSCOPE_DATA") or Path.cwd() / "data")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@dataclasses.dataclass(frozen=True)
class RunRecord:
    kind: str
    inputs: dict[str, Any]
    settings: dict[str, Any]
    seed: int | None
    model_name: str
    model_spec: str
    weights_sha256: str
    result: Any
    note: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    started: str = ""
    finished: str = ""
    run_id: str | None = None

    @property
    def title(self) -> str:
        return f"{self.kind} · {self.model_name} · {self.finished[:19].replace('T', ' ')}"


def new_record(
    model: LoadedModel,
    kind: str,
    inputs: dict,
    settings: dict,
    result: Any,
    *,
    seed: int | None = None,
    note: str = "",
    started: str = "",
) -> RunRecord:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    spec = "" if model.info.source.startswith("embedded") else str(model.folder or model.info.name)
    return RunRecord(
        kind,
        dict(inputs),
        dict(settings),
        seed,
        model.info.name,
        spec,
        model.info.weights_sha256,
        result,
        note,
        started=started or now,
        finished=now,
    )


# ---------------------------------------------------------------------------------------------
# The store


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
            document = _record_document(record)
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
                    Path(folder, "result.json").write_text(result_json)
                    if result_blob:
                        Path(folder, "result.safetensors").write_bytes(result_blob)
                    for name, figure in (figures or {}).items():
                        Path(folder, f"{name}.html").write_text(figure.to_html(include_plotlyjs=True, full_html=True))
                    self.client.log_artifacts(run_id, folder)
                for key, value in _flat_params({**record.inputs, **record.settings, "seed": record.seed}).items():
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
                {},
                dict(run.data.params),
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
            blob_path = path / "result.safetensors"
            result = loads((path / "result.json").read_text(), blob_path.read_bytes() if blob_path.exists() else b"")
        return _record_from_document(document, result, run_id)


def _flat_params(values: dict[str, Any]) -> dict[str, str]:
    flat = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        flat[key[:250]] = text[:6000]
    return flat


def _record_document(record: RunRecord) -> dict:
    document = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name not in ("result", "run_id")}
    return json.loads(json.dumps(document, default=str))


def _record_from_document(document: dict, result: Any, run_id: str) -> RunRecord:
    try:
        return RunRecord(**{**document, "result": result, "run_id": run_id})
    except TypeError as exc:
        raise InputError(f"Run {run_id} has a record this version cannot read ({exc}).") from None


# ---------------------------------------------------------------------------------------------
# Replay


@dataclasses.dataclass(frozen=True)
class ReplayKind:
    """How to re-run one kind of analysis and how closely results must agree."""

    run: Callable[[LoadedModel, RunRecord], Any]
    tolerance: float = 0.0  # 0 = bitwise


REPLAYS: dict[str, ReplayKind] = {}


def register_replay(kind: str, run: Callable[[LoadedModel, RunRecord], Any], tolerance: float = 0.0) -> None:
    REPLAYS[kind] = ReplayKind(run, tolerance)


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    matches: bool
    max_abs_difference: float
    tolerance: float
    compared: int  # how many numbers were compared
    new_result: Any


def numbers_of(value: Any) -> np.ndarray:
    """Every number in a result, flattened in a stable order (for bitwise comparison)."""
    from interp.serialise import to_json

    document, arrays = to_json(value)
    scalars: list[float] = []

    def walk(item: Any) -> None:
        if isinstance(item, bool):
            return
        if isinstance(item, int | float):
            scalars.append(float(item))
        elif isinstance(item, dict):
            if "__array__" in item:
                return
            for key in sorted(item):
                if key not in ("seconds", "__type__") and not key.endswith("seconds"):
                    walk(item[key])
        elif isinstance(item, list):
            for x in item:
                walk(x)

    walk(document)
    parts = [np.asarray(scalars, dtype=np.float64)] + [
        arrays[k].double().numpy().ravel() for k in sorted(arrays, key=lambda k: int(k[1:]))
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Several results kept as one run (e.g. a steering vector and its evaluation)."""

    parts: dict[str, Any]


def replay(model: LoadedModel, record: RunRecord) -> ReplayResult:
    """Re-execute a run from its record and compare with the stored result."""
    import interp.replays  # noqa: F401  (registers the replayable kinds)

    if record.kind not in REPLAYS:
        raise InputError(f"Runs of kind {record.kind!r} cannot be replayed; replayable kinds: {', '.join(sorted(REPLAYS))}.")
    if record.weights_sha256 != model.info.weights_sha256:
        raise InputError(
            f"This run was made with {record.model_name} (weights {record.weights_sha256[:12]}...); load that model to replay it."
        )
    kind = REPLAYS[record.kind]
    new = kind.run(model, record)
    old_numbers, new_numbers = numbers_of(record.result), numbers_of(new)
    if old_numbers.shape != new_numbers.shape:
        return ReplayResult(False, float("inf"), kind.tolerance, 0, new)
    finite = np.isfinite(old_numbers) & np.isfinite(new_numbers)
    same_nan = np.array_equal(np.isnan(old_numbers), np.isnan(new_numbers))
    difference = float(np.abs(old_numbers[finite] - new_numbers[finite]).max()) if finite.any() else 0.0
    matches = same_nan and (difference <= kind.tolerance)
    return ReplayResult(matches, difference, kind.tolerance, int(finite.sum()), new)


# ---------------------------------------------------------------------------------------------
# Compare and export


@dataclasses.dataclass(frozen=True)
class RunComparison:
    settings_diff: tuple[tuple[str, str, str], ...]  # (name, first, second) where they differ
    numbers_compared: int
    max_abs_difference: float
    correlation: float | None


def compare_runs(first: RunRecord, second: RunRecord) -> RunComparison:
    if first.kind != second.kind:
        raise InputError(f"Compare runs of the same kind (got {first.kind} and {second.kind}).")
    left = {**first.inputs, **first.settings, "seed": first.seed, "model": first.model_name, "weights": first.weights_sha256[:12]}
    right = {
        **second.inputs,
        **second.settings,
        "seed": second.seed,
        "model": second.model_name,
        "weights": second.weights_sha256[:12],
    }
    diff = tuple(
        (key, json.dumps(left.get(key), default=str), json.dumps(right.get(key), default=str))
        for key in sorted(set(left) | set(right))
        if json.dumps(left.get(key), default=str) != json.dumps(right.get(key), default=str)
    )
    a, b = numbers_of(first.result), numbers_of(second.result)
    if a.shape != b.shape:
        return RunComparison(diff, 0, float("nan"), None)
    finite = np.isfinite(a) & np.isfinite(b)
    correlation = (
        float(np.corrcoef(a[finite], b[finite])[0, 1])
        if finite.sum() > 2 and np.std(a[finite]) > 0 and np.std(b[finite]) > 0
        else None
    )
    return RunComparison(
        diff, int(finite.sum()), float(np.abs(a[finite] - b[finite]).max()) if finite.any() else 0.0, correlation
    )


def export_report(records: list[RunRecord]) -> bytes:
    """A zip: report.md and report.tex (tables, figure includes), each run's JSON, PNG figures."""
    buffer = io.BytesIO()
    markdown = ["# Steerscope report", ""]
    latex = ["% Steerscope report: \\input{report.tex} in a document that loads graphicx and booktabs", ""]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, record in enumerate(records, start=1):
            stem = f"run{index}_{record.kind}"
            result_json, blob = dumps(record.result)
            archive.writestr(f"{stem}/record.json", json.dumps(_record_document(record), indent=1))
            archive.writestr(f"{stem}/result.json", result_json)
            if blob:
                archive.writestr(f"{stem}/result.safetensors", blob)
            png = figure_png(record)
            if png is not None:
                archive.writestr(f"{stem}/figure.png", png)
            settings = {**record.inputs, **record.settings, "seed": record.seed}
            markdown += [
                f"## Run {index}: {record.kind}",
                "",
                f"- model: {record.model_name} (weights SHA-256 {record.weights_sha256[:16]}...)",
                f"- finished: {record.finished}",
                f"- run id: {record.run_id}",
                f"- note: {record.note or '-'}",
                "",
                "| setting | value |",
                "|---|---|",
            ]
            markdown += [f"| {k} | {_cell(v)} |" for k, v in settings.items()]
            if png is not None:
                markdown += ["", f"![{record.kind}]({stem}/figure.png)"]
            markdown += [
                "",
                "To reproduce: open the Experiments page, select this run, Replay — or in Python:",
                "",
                "```python",
                "import interp",
                "from interp.records import RunStore, replay",
                f"model = interp.load_model({record.model_spec or None!r})",
                f"replay(model, RunStore().load({record.run_id!r}))",
                "```",
                "",
            ]
            latex += [
                f"\\subsection*{{Run {index}: {_tex(record.kind)}}}",
                "\\begin{tabular}{ll}",
                "\\toprule",
                "setting & value \\\\",
                "\\midrule",
            ]
            latex += [f"{_tex(k)} & {_tex(_cell(v))} \\\\" for k, v in settings.items()]
            latex += ["\\bottomrule", "\\end{tabular}", ""]
            if png is not None:
                latex += [
                    "\\begin{figure}[h]",
                    "\\centering",
                    f"\\includegraphics[width=0.8\\linewidth]{{{stem}/figure.png}}",
                    f"\\caption{{{_tex(record.kind)} on {_tex(record.model_name)}}}",
                    "\\end{figure}",
                    "",
                ]
        markdown += [
            "",
            "Library versions: " + ", ".join(f"{k} {v}" for k, v in (records[0].versions if records else {}).items()),
        ]
        archive.writestr("report.md", "\n".join(markdown))
        archive.writestr("report.tex", "\n".join(latex))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def _tex(text: str) -> str:
    for a, b in (
        ("\\", "\\textbackslash{}"),
        ("&", "\\&"),
        ("%", "\\%"),
        ("$", "\\$"),
        ("#", "\\#"),
        ("_", "\\_"),
        ("{", "\\{"),
        ("}", "\\}"),
        ("~", "\\~{}"),
        ("^", "\\^{}"),
    ):
        text = text.replace(a, b)
    return text


def figure_png(record: RunRecord) -> bytes | None:
    """A static PNG of the run's main numbers (matplotlib, offline): a heatmap for 2-D results, bars for 1-D.

    A run of several parts (a patching pair, a method comparison, a steering sweep with its vector)
    gets one panel per part that has numbers to show, up to four.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _main_arrays(record.result)[:4]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), dpi=110, squeeze=False)
    for axis, (title, array, labels, ticks) in zip(axes[0], panels, strict=True):
        if array.ndim == 2:
            diverging = bool(np.nanmin(array) < 0)
            limit = float(np.nanmax(np.abs(array))) or 1.0
            image = axis.imshow(
                array, aspect="auto", cmap="RdBu_r" if diverging else "Purples",
                vmin=-limit if diverging else None, vmax=limit if diverging else None,
            )  # fmt: skip
            figure.colorbar(image, ax=axis)
            axis.set_xlabel(labels[0])
            axis.set_ylabel(labels[1])
            if ticks is not None:  # named rows and columns, thinned to stay readable
                for set_ticks, set_labels, names in ((axis.set_xticks, axis.set_xticklabels, ticks[0]),
                                                     (axis.set_yticks, axis.set_yticklabels, ticks[1])):  # fmt: skip
                    step = max(1, len(names) // 12)
                    set_ticks(range(0, len(names), step))
                    set_labels([str(n) for n in names[::step]], fontsize=7)
        else:
            axis.bar(range(len(array)), array, color="#5b4bdb")
            axis.set_xlabel(labels[0])
        axis.set_title(title, fontsize=10)
    figure.suptitle(record.kind)
    out = io.BytesIO()
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


Panel = tuple[str, np.ndarray, tuple[str, str], tuple[Sequence, Sequence] | None]  # title, numbers, axis titles, tick names


def _main_arrays(result: Any, name: str = "") -> list[Panel]:
    """A panel for each part of a result that has numbers worth a picture."""
    if isinstance(result, Bundle):
        return [panel for key, part in result.parts.items() for panel in _main_arrays(part, f"{name} {key}".strip())]
    title = name or type(result).__name__
    cells = getattr(result, "cells", None)
    if cells and all(hasattr(c, "coefficient") and hasattr(c, "behaviour") for c in cells):  # a steering sweep
        layers, coefficients = sorted({c.layer for c in cells}), sorted({c.coefficient for c in cells})
        grid = np.full((len(layers), len(coefficients)), np.nan)
        for c in cells:
            grid[layers.index(c.layer), coefficients.index(c.coefficient)] = c.behaviour
        return [(f"{title}: behaviour", grid, ("coefficient", "layer"), (coefficients, layers))]
    if hasattr(result, "steered") and hasattr(result, "unsteered"):  # a steering evaluation
        pair = np.array([result.unsteered.mean_behaviour, result.steered.mean_behaviour])
        return [(f"{title}: behaviour", pair, ("0 = unsteered, 1 = steered", ""), None)]
    if isinstance(result, list | tuple) and result and all(hasattr(e, "loss") for e in result):  # a training log
        return [(f"{title}: loss per step", np.array([e.loss for e in result], dtype=np.float64), ("step", ""), None)]
    array = _main_array(result)
    if array is None:
        return []
    if array.ndim == 1:
        return [(title, array, ("position", ""), None)]
    rows, columns = getattr(result, "row_labels", None), getattr(result, "column_labels", None)
    named = rows is not None and columns is not None and (len(rows), len(columns)) == array.shape
    return [(title, array, ("column", "row"), (columns, rows) if named else None)]


def _main_array(result: Any) -> np.ndarray | None:
    for name in ("values", "scores", "patterns", "top_probs", "mean_reward"):
        value = getattr(result, name, None)
        if isinstance(value, np.ndarray) and value.size:
            array = value.astype(np.float64)
            while array.ndim > 2:
                array = array[0] if name == "patterns" else array[..., 0]
            return array
    return None
