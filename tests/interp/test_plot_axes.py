"""Every figure the core's plot helpers make, on tiny real results: every axis and colour bar with numbers names
its unit, and axes that count (layers, steps, N, ranks) tick whole numbers only (issue 20, "Numbers and plots")."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from interp.attention import SCORE_NAMES
from interp.attribution_batch import driving_tokens
from steering.meaning import layer_cosines, token_effects
from steering.rlhf.inside import InsideView
from tests.runs.test_round_trip import every_example
from tests.steering.test_vector import make

PLOT_MODULES = (
    "interp.plots",
    "interp.plots.attention",
    "interp.plots.attribution",
    "interp.plots.circuits",
    "steering.plots",
    "steering.rlhf.plots",
)
# A title names its unit in brackets ("probability (%)", "KL bound (nats)"), or says what it counts.
UNIT = re.compile(r"\(.+\)|^(layer|head|training step|step|position)\b")
COUNTING = re.compile(r"^(layer|head|training step|step|position|N|rank)\b|\(count\)")


@pytest.fixture(scope="module")
def figures(tiny_llama) -> dict[str, list[go.Figure]]:
    """Each plot helper's figures, made from the tiny model's results of every run kind's example."""
    from interp.circuits import top_circuit
    from interp.circuits.edges import circuit_document
    from interp.plots import next_token_bar
    from interp.plots.attention import head_grid, lens_heatmap, lens_target_line, pattern_heatmap, score_heatmap
    from interp.plots.attribution import driving_tokens_bar, faithfulness_curves, method_comparison
    from interp.plots.circuits import circuit_graph, dla_bar, faithfulness_plot, patching_agreement, patching_heatmap
    from steering.plots import cosine_heatmap, pareto_plot, sweep_heatmaps, token_effect_bars
    from steering.rlhf.plots import best_of_n_figure, comparison_figure, dpo_log_figure, inside_view_figure

    results = {kind: spec.run(tiny_llama) for kind, spec in every_example(tiny_llama).items()}
    comparison, lens = results["attribution_comparison"], results["logit_lens"]
    edges = results["edge_circuit"]
    assert lens.target is not None
    drivers = driving_tokens(results["attribution_batch"].completed)
    vector = make(tiny_llama, layers=(0, 1))
    layers = tuple(range(tiny_llama.info.n_layers))
    inside = InsideView(layers, np.linspace(0.1, 0.3, len(layers)), np.linspace(-0.2, 0.5, len(layers)))
    return {
        "next_token_bar": [next_token_bar(results["next_token"])],
        "head_grid": [head_grid(results["attention"])],
        "pattern_heatmap": [pattern_heatmap(results["attention"], 0, 0)],
        "score_heatmap": [score_heatmap(results["head_scores"], name) for name in SCORE_NAMES],
        "lens_heatmap": [lens_heatmap(lens)],
        "lens_target_line": [lens_target_line(lens)],
        "method_comparison": [method_comparison(comparison.attributions)],
        "faithfulness_curves": [
            faithfulness_curves(comparison.curves),
            faithfulness_curves(comparison.curves, comparison.attributions[0].target),
        ],
        "driving_tokens_bar": [driving_tokens_bar(drivers, title) for title in drivers["method"].unique()],
        "patching_heatmap": [patching_heatmap(results["patching"].activation)],
        "patching_agreement": [patching_agreement(results["patching"])],
        "dla_bar": [dla_bar(results["direct_logit_attribution"])],
        "circuit_graph": [
            circuit_graph(
                circuit_document(top_circuit(edges.scores, 8), edges.scores, edges.checks),
                tiny_llama.info.n_layers,
                tiny_llama.info.n_heads,
            )
        ],
        "faithfulness_plot": [faithfulness_plot(edges.curve)],
        "sweep_heatmaps": [sweep_heatmaps(results["steering_sweep"])],
        "pareto_plot": [pareto_plot(results["steering_sweep"])],
        "token_effect_bars": [token_effect_bars(token_effects(tiny_llama, vector, 1))],
        "cosine_heatmap": [cosine_heatmap(layer_cosines(vector), vector.layers)],
        "best_of_n_figure": [best_of_n_figure(results["best_of_n"])],
        "dpo_log_figure": [dpo_log_figure(results["dpo"].log)],
        "comparison_figure": [comparison_figure(results["rlhf_comparison"])],
        "inside_view_figure": [inside_view_figure(inside)],
    }


def plot_helpers() -> set[str]:
    """Every public function of the plot modules that makes a figure (returns one, and takes none to style)."""
    names = set()
    for module_name in PLOT_MODULES:
        module = importlib.import_module(module_name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module_name and not name.startswith("_"):
                signature = inspect.signature(function)
                takes_figure = any("Figure" in str(p.annotation) for p in signature.parameters.values())
                if "Figure" in str(signature.return_annotation) and not takes_figure:
                    names.add(name)
    return names


def test_every_plot_helper_is_walked(figures):
    assert plot_helpers() == set(figures), "a new plot helper needs a case in the figures fixture"


def numeric_axes(fig: go.Figure):
    """``(name, axis)`` of every axis that shows numbers: some trace on it has numeric data, and it is not labelled
    with names (category type or tick text that is not a number)."""
    for name in [key for key in fig.layout.to_plotly_json() if re.fullmatch(r"[xy]axis\d*", key)]:
        axis = fig.layout[name]
        if axis.type == "category" or axis.visible is False:
            continue
        if axis.ticktext is not None and not all(re.fullmatch(r"[\d,.]+", str(t)) for t in axis.ticktext):
            continue
        short = name[0] + name[5:]  # "yaxis2" -> "y2"
        data = [
            value
            for trace in fig.data
            if (getattr(trace, f"{name[0]}axis", None) or name[0]) == short and getattr(trace, name[0], None) is not None
            for value in np.asarray(getattr(trace, name[0]), dtype=object).ravel()
        ]
        if data and all(isinstance(v, int | float | np.integer | np.floating) for v in data):
            yield name, axis


def titled(axis) -> str:
    return axis.title.text or "" if axis.title is not None else ""


def test_every_axis_with_numbers_names_its_unit(figures):
    missing = [
        f"{helper}: {name} {titled(axis)!r}"
        for helper, made in figures.items()
        for fig in made
        for name, axis in numeric_axes(fig)
        if not UNIT.search(titled(axis))
    ]
    assert not missing, missing


def test_every_colour_bar_names_its_unit(figures):
    missing = []
    for helper, made in figures.items():
        for fig in made:
            for trace in fig.data:
                if isinstance(trace, go.Heatmap) and trace.showscale is not False:
                    title = trace.colorbar.title.text or ""
                    if not UNIT.search(title.replace("<br>", " ")):
                        missing.append(f"{helper}: colour bar {title!r}")
    assert not missing, missing


def test_axes_that_count_tick_whole_numbers(figures):
    fractional = []
    checked = 0
    for helper, made in figures.items():
        for fig in made:
            for name, axis in numeric_axes(fig):
                if not COUNTING.search(titled(axis)):
                    continue
                checked += 1
                whole = (axis.tickvals is not None and all(float(v).is_integer() for v in axis.tickvals)) or (
                    axis.tickmode == "linear" and axis.dtick is not None and float(axis.dtick).is_integer()
                )
                if not whole:
                    fractional.append(f"{helper}: {name} {titled(axis)!r}")
    assert not fractional, fractional
    assert checked >= 5  # N, training step, layer, rank, count


def test_logit_lens_rank_ticks_read_as_decades(figures):
    (fig,) = figures["lens_target_line"]
    assert list(fig.layout.yaxis2.ticktext[:4]) == ["1", "10", "100", "1,000"][: len(fig.layout.yaxis2.ticktext[:4])]
    assert all(float(v) == 10**i for i, v in enumerate(fig.layout.yaxis2.tickvals))


def relative_luminance(colour: str) -> float:
    channels = [float(c) / 255 for c in re.findall(r"[\d.]+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


NAMED = {"white": "rgb(255, 255, 255)", "black": "rgb(0, 0, 0)"}


def colour_at(trace: go.Heatmap, value: float) -> str:
    """The colour plotly paints ``value`` with on this heatmap (linear between its colour scale's stops)."""
    from plotly.colors import find_intermediate_color, unlabel_rgb

    scale = [(float(stop), colour) for stop, colour in trace.colorscale]
    if trace.reversescale:
        scale = [(1 - stop, colour) for stop, colour in reversed(scale)]
    t = min(max((value - trace.zmin) / (trace.zmax - trace.zmin), 0.0), 1.0)
    for (low, low_colour), (high, high_colour) in itertools.pairwise(scale):
        if low <= t <= high:
            mixed = find_intermediate_color(unlabel_rgb(low_colour), unlabel_rgb(high_colour), (t - low) / (high - low or 1))
            return "rgb({}, {}, {})".format(*mixed)
    raise AssertionError(t)


@pytest.mark.parametrize("values", [[-3.0, -0.2, 0.0, 0.4, 3.0], [0.9, 1.0, 2.5, 8.0, 40.0]])
def test_sweep_cell_labels_contrast_with_their_cells(tiny_llama, values):
    from steering.plots import sweep_heatmaps
    from steering.runs import SteeringSweep

    spec = SteeringSweep(make(tiny_llama, layers=(1,)), layers=(1,), coefficients=(1.0,), n_samples=1, max_new_tokens=2)
    swept = spec.run(tiny_llama)
    cell = swept.cells[0]
    cells = tuple(
        dataclasses.replace(cell, coefficient=float(i + 1), behaviour=swept.baseline.mean_behaviour + v, perplexity_ratio=abs(v))
        for i, v in enumerate(values)
    )
    swept = dataclasses.replace(swept, coefficients=tuple(float(i + 1) for i in range(len(values))), cells=cells)
    fig = sweep_heatmaps(swept)
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    labels = [t for t in fig.data if isinstance(t, go.Scatter)]
    for heatmap, label in zip(heatmaps, labels, strict=True):
        colours = label.textfont.color
        assert isinstance(colours, tuple | list) and len(colours) == len(values)
        for value, text_colour in zip(np.asarray(heatmap.z).ravel(), colours, strict=True):
            background = colour_at(heatmap, float(value))
            assert contrast(NAMED.get(text_colour, text_colour), background) >= 4.5, (value, text_colour, background)


def test_the_comparison_leaves_room_for_its_labels(figures):
    (fig,) = figures["comparison_figure"]
    (points,) = fig.data
    assert points.cliponaxis is False and points.textposition == "top center"
    (x_low, x_high), (y_low, y_high) = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert x_low < min(points.x) and x_high > max(points.x)  # a name centred on the outermost point is not cut
    assert y_high > max(points.y) and y_low < min(points.y)
