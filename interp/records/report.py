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
from interp.records.summary import summary_rows, unit_of
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
            rows = summary_rows(record.result)
            if rows:
                markdown += ["", "Results:", "", "| result | value | unit | where |", "|---|---|---|---|"]
                markdown += [
                    f"| {_cell(r.name)} | {r.value:.4g} | {_cell(r.unit or '-')} | {_cell(r.where or '-')} |" for r in rows
                ]
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
                "\\begin{tabular}{p{0.3\\linewidth}p{0.62\\linewidth}}",
                "\\toprule",
                "setting & value \\\\",
                "\\midrule",
            ]
            latex += [f"{_tex(k)} & {_tex(_cell(v, escape=False))} \\\\" for k, v in settings.items()]
            latex += ["\\bottomrule", "\\end{tabular}", ""]
            if rows:
                latex += [
                    "\\par\\medskip\\noindent Results:\\par",
                    "\\begin{tabular}{p{0.34\\linewidth}rp{0.2\\linewidth}p{0.22\\linewidth}}",
                    "\\toprule",
                    "result & value & unit & where \\\\",
                    "\\midrule",
                ]
                latex += [
                    " & ".join(
                        (_tex(_short(r.name)), f"{r.value:.4g}", _tex(_short(r.unit or "-")), _tex(_short(r.where or "-")))
                    )
                    + " \\\\"
                    for r in rows
                ]
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


MAX_CELL = 200  # characters of one table cell


def _cell(value: Any, *, escape: bool = True) -> str:
    """A setting as one table cell: a long list keeps whole items, then says how many more there are."""
    if isinstance(value, list | tuple) and value:
        items = [json.dumps(item, default=str) for item in value]
        kept: list[str] = []
        for item in items:
            if kept and len(", ".join([*kept, item])) > MAX_CELL:
                break
            kept.append(_short(item))
        text = "[" + ", ".join(kept) + (f", … and {len(items) - len(kept)} more]" if len(kept) < len(items) else "]")
    else:
        text = _short(value if isinstance(value, str) else json.dumps(value, default=str))
    text = text.replace("\n", " ")
    return text.replace("|", "\\|") if escape else text


def _short(text: str, limit: int = MAX_CELL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    for a, b in (("…", "\\ldots{}"), ("␣", "\\textvisiblespace{}"), ("→", "$\\to$"), ("×", "$\\times$")):
        text = text.replace(a, b)
    return text


def figure_png(result: Any, title: str) -> bytes | None:
    """A static PNG of the run's main numbers (matplotlib, offline): a heatmap for 2-D results, bars for 1-D.

    A run of several parts (a patching pair, a method comparison, a steering sweep with its vector)
    gets one panel per part that has numbers to show (one per method for a method comparison), laid out
    in a grid of up to three columns; every axis is titled with the result's own names and units.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = _main_arrays(result)[:MAX_PANELS]
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), dpi=110, squeeze=False)
    for axis in axes.ravel()[len(panels) :]:
        axis.set_visible(False)
    for axis, (name, array, labels, ticks, unit) in zip(axes.ravel(), panels, strict=False):
        if array.ndim == 2:
            diverging = bool(np.nanmin(array) < 0)
            limit = float(np.nanmax(np.abs(array))) or 1.0
            image = axis.imshow(
                array, aspect="auto", cmap="RdBu_r" if diverging else "Purples",
                vmin=-limit if diverging else None, vmax=limit if diverging else None,
            )  # fmt: skip
            figure.colorbar(image, ax=axis, label=unit or None)
            axis.set_xlabel(labels[0])
            axis.set_ylabel(labels[1])
            if ticks is None:  # rows and columns are indices (layers, heads, positions): whole-number ticks only
                for integer_axis in (axis.xaxis, axis.yaxis):
                    integer_axis.set_major_locator(MaxNLocator(integer=True))
            else:  # named rows and columns, thinned to stay readable
                for set_ticks, set_labels, names in ((axis.set_xticks, axis.set_xticklabels, ticks[0]),
                                                     (axis.set_yticks, axis.set_yticklabels, ticks[1])):  # fmt: skip
                    step = max(1, len(names) // 12)
                    set_ticks(range(0, len(names), step))
                    set_labels([str(n) for n in names[::step]], fontsize=7)
        else:
            axis.bar(range(len(array)), array, color="#5b4bdb")
            axis.set_xlabel(labels[0])
            axis.set_ylabel(unit or labels[1])
            if ticks is not None and len(ticks[0]) == len(array):
                step = max(1, len(array) // 16)
                axis.set_xticks(range(0, len(array), step))
                axis.set_xticklabels([str(n) for n in list(ticks[0])[::step]], fontsize=7, rotation=60)
            else:
                axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_title(name, fontsize=10)
    figure.suptitle(title)
    out = io.BytesIO()
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


MAX_PANELS = 12  # one per part or method; a comparison of every method fits

# title, numbers, axis titles (x, y), tick names (x, y), unit of the numbers
Panel = tuple[str, np.ndarray, tuple[str, str], tuple[Sequence, Sequence] | None, str]


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
        unit = f"{result.scorer} score" if getattr(result, "scorer", None) else "behaviour score"
        return [(f"{title}: behaviour", grid, ("coefficient", "layer"), (coefficients, layers), unit)]
    if hasattr(result, "steered") and hasattr(result, "unsteered"):  # a steering evaluation
        pair = np.array([result.unsteered.mean_behaviour, result.steered.mean_behaviour])
        unit = f"mean {result.scorer} score" if getattr(result, "scorer", None) else "mean behaviour score"
        return [(f"{title}: behaviour", pair, ("run", unit), (("unsteered", "steered"), ()), unit)]
    if isinstance(result, list | tuple) and result and all(hasattr(e, "loss") for e in result):  # a training log
        losses = np.array([e.loss for e in result], dtype=np.float64)
        return [(f"{title}: loss per step", losses, ("step", "loss (nats)"), None, "loss (nats)")]
    if isinstance(result, list | tuple) and result and all(dataclasses.is_dataclass(e) for e in result):  # e.g. methods
        return [panel for index, item in enumerate(result) for panel in _main_arrays(item, _part_name(item, index))]
    array, field = _main_array(result)
    if array is None:  # a result made of named parts (e.g. activation and attribution patching): draw each part
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            return [
                panel
                for field in dataclasses.fields(result)
                if dataclasses.is_dataclass(part := getattr(result, field.name)) or isinstance(part, list | tuple)
                for panel in _main_arrays(part, f"{name} {field.name}".strip())
            ]
        return []
    unit = unit_of(result, field)
    tokens = tuple(getattr(result, "tokens", None) or ())
    if array.ndim == 1:
        if field == "mean_reward" and hasattr(result, "ns"):
            return [(title, array, ("N (samples per prompt)", unit), (tuple(result.ns), ()), unit)]
        named = tokens if len(tokens) == len(array) else None
        return [(title, array, ("position (prompt token)" if named else "index", unit), (named, ()) if named else None, unit)]
    if field == "patterns":  # one head's pattern: say which
        return [
            (f"{title}: layer 0, head 0 (L0.H0)", array, ("key position", "query position"), _ticks(tokens, tokens, array), unit)
        ]
    if field == "top_probs":  # the top token's probability per layer and position
        layers = tuple(getattr(result, "layer_labels", ()))
        return [(f"{title}: top-1 probability", array, ("position", "layer"), _ticks(tokens, layers, array), unit)]
    rows, columns = getattr(result, "row_labels", None), getattr(result, "column_labels", None)
    if field in ("changes", "heads", "induction") or getattr(result, "kind", None) == "heads":
        axis_titles = ("head", "layer")
    elif rows is not None:
        axis_titles = ("position", "layer")
    else:
        axis_titles = ("index", "index")
    return [(title, array, axis_titles, _ticks(columns, rows, array), unit)]


def _ticks(columns: Sequence | None, rows: Sequence | None, array: np.ndarray) -> tuple[Sequence, Sequence] | None:
    named = rows is not None and columns is not None and (len(rows), len(columns)) == array.shape
    return (columns, rows) if named else None


def _part_name(item: Any, index: int) -> str:
    for holder in (item, getattr(item, "attribution", None)):
        if isinstance(getattr(holder, "method", None), str):
            return holder.method
    return str(index)


def _main_array(result: Any) -> tuple[np.ndarray | None, str]:
    for name in ("values", "scores", "patterns", "top_probs", "mean_reward", "changes", "heads", "induction"):
        value = getattr(result, name, None)
        if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "fiu":
            array = value.astype(np.float64)
            while array.ndim > 2:
                array = array[0] if name == "patterns" else array[..., 0]
            return array, name
    return None, ""
