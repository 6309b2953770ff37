"""Figures for steering: sweep heatmaps, the Pareto front, what a vector promotes, layer similarity."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plots import base_layout, cell_colours, plot_text, readable_on
from steering.meaning import TokenEffect
from steering.scores import SCORERS
from steering.sweep import SweepResult

CELL_HOVER = (
    "%{y}, coefficient %{x}<br>gain %{customdata[0]:+.3f}<br>perplexity x%{customdata[1]:.2f}"
    "<br>KL %{customdata[2]:.3f} nats<extra>click to apply</extra>"
)


def score_unit(scorer: str) -> str:
    """The unit of a behaviour scorer's numbers, from its name (as results store it)."""
    units = {s.name: s.unit for s in SCORERS.values()}
    if scorer in units:
        return units[scorer]
    return "reward, Bradley–Terry logits" if "reward" in scorer else "score"


def _finite_peak(values: np.ndarray, floor: float) -> float:
    finite = values[np.isfinite(values)]
    return max(float(np.abs(finite).max()) if finite.size else 0.0, floor)


def _row(result: SweepResult, layer: int) -> list:
    """One layer's cells in coefficient order (as :meth:`SweepResult.grid` lays them out)."""
    by_coefficient = {c.coefficient: c for c in result.cells if c.layer == layer}
    return [by_coefficient.get(c) for c in result.coefficients]


def _cell_text(col: int, value: float, reliable: bool) -> str:
    if col == 2:
        return f"{value:.1f}x"
    if col == 3:
        return f"{value:.2f}" if np.isfinite(value) else ""
    return f"{value:+.2f}" if reliable else f"({value:+.2f})"


def sweep_heatmaps(result: SweepResult) -> go.Figure:
    """Behaviour gain, perplexity ratio and KL (nats) over layers x coefficients; click a cell to apply it.

    The KL panel is left out for a sweep kept before KL was measured (every cell NaN). Each cell's label is black or
    white, whichever reads better on that cell's colour.
    """
    columns = [f"{c:g}" for c in result.coefficients]
    rows = [f"L{layer}" for layer in result.layers]
    gain = result.grid("behaviour") - result.baseline.mean_behaviour
    ratio = result.grid("perplexity_ratio")
    gain_peak = _finite_peak(gain, 1e-6)
    ratio_top = max(_finite_peak(ratio, 0.0), 1 + 1e-6)
    kl = result.grid("kl")
    kl_top = _finite_peak(kl, 1e-6)
    panels = 3 if np.isfinite(kl).any() else 2
    scales = {1: ("RdBu", -gain_peak, gain_peak, True), 2: ("Oranges", 1.0, ratio_top, False), 3: ("Purples", 0.0, kl_top, False)}
    unit = score_unit(result.scorer)
    reliable = np.array([[c is None or result.behaviour_is_reliable(c) for c in _row(result, layer)] for layer in result.layers])
    gain_title = f"Behaviour gain ({result.scorer})"
    if not reliable.all():
        gain_title += "<br><sub>(in brackets: text too damaged for its score to mean much)</sub>"
    titles = (gain_title, "Damage: perplexity / unsteered", "Damage: KL(unsteered ‖ steered)")[:panels]
    fig = make_subplots(rows=1, cols=panels, subplot_titles=titles, horizontal_spacing=0.14 if panels == 2 else 0.1)
    bar_x = {1: 0.43 if panels == 2 else 0.26, 2: None if panels == 2 else 0.63}
    fig.add_trace(
        go.Heatmap(
            z=gain,
            x=columns,
            y=rows,
            colorscale="RdBu",
            reversescale=True,
            zmin=-gain_peak,
            zmax=gain_peak,
            colorbar={"x": bar_x[1], "thickness": 10, "title": f"gain ({unit})"},
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Heatmap(
            z=ratio,
            x=columns,
            y=rows,
            colorscale="Oranges",
            zmin=1,
            zmax=ratio_top,
            colorbar={"thickness": 10, "title": "perplexity (× unsteered)", **({"x": bar_x[2]} if bar_x[2] else {})},
            hoverinfo="skip",
        ),
        row=1,
        col=2,
    )
    if panels == 3:
        fig.add_trace(
            go.Heatmap(
                z=kl,
                x=columns,
                y=rows,
                colorscale="Purples",
                zmin=0,
                zmax=kl_top,
                colorbar={"thickness": 10, "title": "KL (nats)"},
                hoverinfo="skip",
            ),
            row=1,
            col=3,
        )
    cells = [(i, j) for i in range(len(rows)) for j in range(len(columns))]
    for col, values in ((1, gain), (2, ratio), (3, kl))[:panels]:
        scale, low, high, reverse = scales[col]
        backgrounds = cell_colours(np.array([values[i, j] for i, j in cells]), scale, low, high, reverse=reverse)
        fig.add_trace(
            go.Scatter(
                x=[columns[j] for _, j in cells],
                y=[rows[i] for i, _ in cells],
                mode="markers+text",
                text=[_cell_text(col, values[i, j], reliable[i, j]) for i, j in cells],
                textfont={"size": 11, "color": [readable_on(colour) for colour in backgrounds]},
                marker={"size": 30, "symbol": "square", "color": "rgba(0,0,0,0)"},
                customdata=[[gain[i, j], ratio[i, j], kl[i, j]] for i, j in cells],
                hovertemplate=CELL_HOVER,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title="coefficient", type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return base_layout(fig, height=max(260, 55 * len(rows) + 120))


def pareto_plot(result: SweepResult) -> go.Figure:
    """Every setting as gain against damage; the front joined, the recommendation starred."""
    base = result.baseline.mean_behaviour
    sign = 1 if result.goal == "raise" else -1
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[c.perplexity_ratio for c in result.cells],
            y=[sign * (c.behaviour - base) for c in result.cells],
            mode="markers",
            text=[f"L{c.layer}, coefficient {c.coefficient:g}" for c in result.cells],
            customdata=[c.kl for c in result.cells],
            marker={"color": "#9a93e6", "size": 9},
            name="settings",
            hovertemplate="%{text}<br>gain %{y:+.3f}<br>perplexity x%{x:.2f}<br>KL %{customdata:.3f} nats<extra></extra>",
        )
    )
    front = result.pareto_front()
    fig.add_trace(
        go.Scatter(
            x=[c.perplexity_ratio for c in front],
            y=[sign * (c.behaviour - base) for c in front],
            mode="lines+markers",
            line={"color": "#5b4bdb"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    best = result.recommended()
    if best is not None:
        fig.add_trace(
            go.Scatter(
                x=[best.perplexity_ratio],
                y=[sign * (best.behaviour - base)],
                mode="markers",
                marker={"symbol": "star", "size": 18, "color": "#e07b18"},
                name=f"recommended: L{best.layer}, {best.coefficient:g}",
            )
        )
    fig.add_vline(x=result.max_perplexity_ratio, line_dash="dot", line_color="#999")
    fig.update_xaxes(title="damage: perplexity under the unsteered model (x unsteered)")
    goal = "higher" if sign > 0 else "lower"
    fig.update_yaxes(title=f"behaviour gain ({score_unit(result.scorer)}; {goal} is the goal)")
    fig.update_layout(legend={"orientation": "h", "y": -0.3})
    return base_layout(fig, height=380)


def token_effect_bars(effect: TokenEffect, k: int = 12) -> go.Figure:
    promoted, suppressed = effect.promoted[:k], effect.suppressed[:k]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Promoted tokens", "Suppressed tokens"), horizontal_spacing=0.18)
    fig.add_trace(
        go.Bar(
            x=[v for _, v in promoted][::-1], y=plot_text([t for t, _ in promoted][::-1]), orientation="h", marker_color="#5b4bdb"
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=[v for _, v in suppressed][::-1],
            y=plot_text([t for t, _ in suppressed][::-1]),
            orientation="h",
            marker_color="#e07b18",
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(type="category")
    fig.update_xaxes(title="logit change minus the vocabulary's mean (logits, coefficient 1)")
    fig.update_layout(showlegend=False)
    return base_layout(
        fig, height=80 + 22 * k, title=f"What the direction at layer {effect.layer} says, read through the unembedding"
    )


def cosine_heatmap(matrix: np.ndarray, layers: tuple[int, ...]) -> go.Figure:
    labels = [f"L{layer}" for layer in layers]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale="RdBu",
            reversescale=True,
            zmin=-1,
            zmax=1,
            colorbar={"title": "cosine (−1..1)", "thickness": 12},
            hovertemplate="%{y} vs %{x}: cosine %{z:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return base_layout(fig, height=max(260, 24 * len(layers) + 120), title="Cosine between the layers' directions")
