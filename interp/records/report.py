"""A report of kept runs: Markdown and LaTeX with each run's settings, figure and how to reproduce it."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from interp.records.record import RunRecord
from interp.records.store import record_document
from interp.runs.spec import Bundle
from interp.serialise import dumps


def export_report(records: list[RunRecord]) -> bytes:
    """A zip: report.md and report.tex (tables, figure includes), each run's JSON, PNG figures."""
    buffer = io.BytesIO()
    markdown = ["# Steerscope report", ""]
    latex = ["% Steerscope report: \\input{report.tex} in a document that loads graphicx and booktabs", ""]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, record in enumerate(records, start=1):
            stem = f"run{index}_{record.kind}"
            result_json, blob = dumps(record.result)
            archive.writestr(f"{stem}/record.json", json.dumps(record_document(record), indent=1))
            archive.writestr(f"{stem}/result.json", result_json)
            if blob:
                archive.writestr(f"{stem}/result.safetensors", blob)
            png = figure_png(record.result, record.kind)
            if png is not None:
                archive.writestr(f"{stem}/figure.png", png)
            settings = record.settings
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


def figure_png(result: Any, title: str) -> bytes | None:
    """A static PNG of the run's main numbers (matplotlib, offline): a heatmap for 2-D results, bars for 1-D.

    A run of several parts (a patching pair, a method comparison, a steering sweep with its vector)
    gets one panel per part that has numbers to show, up to four.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _main_arrays(result)[:4]
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
    figure.suptitle(title)
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
    if array is None:  # a result made of named parts (e.g. activation and attribution patching): draw each part
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            return [
                panel
                for field in dataclasses.fields(result)
                if dataclasses.is_dataclass(part := getattr(result, field.name)) or isinstance(part, list | tuple)
                for panel in _main_arrays(part, f"{name} {field.name}".strip())
            ]
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
