"""What a kept run is: its spec, the result, the model's name and weights hash, versions, times, a note."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import os
from pathlib import Path
from typing import Any

from interp.loading import LoadedModel
from interp.runs.spec import RunSpec

LIBRARIES = ("torch", "transformers", "transformer-lens", "shap", "captum", "streamlit", "trl", "peft")


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
    """One kept run. ``spec`` and ``result`` are None in cheap listings (:meth:`RunStore.list`)."""

    kind: str
    spec: RunSpec | None
    model_name: str
    model_spec: str  # what to pass to load_model to get the model back ("" = the embedded default)
    weights_sha256: str
    result: Any
    note: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    started: str = ""
    finished: str = ""
    run_id: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # the settings, flat (listings, old records)

    @property
    def title(self) -> str:
        return f"{self.kind} · {self.model_name} · {self.finished[:19].replace('T', ' ')}"

    @property
    def settings(self) -> dict[str, Any]:
        """The run's settings as plain values (from the spec when it is loaded)."""
        return self.spec.settings() if self.spec is not None else dict(self.params)


def new_record(model: LoadedModel, spec: RunSpec, result: Any, *, note: str = "", started: str = "") -> RunRecord:
    """A record of ``spec`` run on ``model`` with ``result``, ready for :meth:`RunStore.save`."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    model_spec = "" if model.info.source.startswith("embedded") else str(model.folder or model.info.name)
    return RunRecord(
        spec.kind,
        spec,
        model.info.name,
        model_spec,
        model.info.weights_sha256,
        result,
        note,
        started=started or now,
        finished=now,
    )
