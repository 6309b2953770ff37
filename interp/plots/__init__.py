"""Plotly figures for core results. Each takes a result dataclass and returns a figure."""

from __future__ import annotations

import html
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go

from interp.forward import NextTokenPredictions

FONT = "Inter, system-ui, sans-serif"


def plot_text(labels: Iterable[str]) -> list[str]:
    """Token text made safe for plotly, which renders a subset of HTML (<a>, <b>, <br>) in labels.

    Plotly decodes entities, so an escaped ``<b>`` shows as the literal text the user typed.
    """
    return [html.escape(str(label), quote=False) for label in labels]


def plot_text_array(labels: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda label: html.escape(str(label), quote=False), otypes=[object])(labels)


def integer_ticks(values: Iterable[int], *, most: int = 12) -> dict:
    """Axis settings that tick only whole numbers (layers, steps, counts): the values themselves when few, else a
    whole-number step. Plotly's automatic ticks would put 0.5 between two layers."""
    values = sorted({int(v) for v in values})
    if not values:
        return {"tickformat": "d"}
    if len(values) <= most:
        return {"tickmode": "array", "tickvals": values, "ticktext": [f"{v:,}" for v in values]}
    step = max(1, -(-(values[-1] - values[0]) // most))
    return {"tickmode": "linear", "tick0": values[0], "dtick": step, "tickformat": "d"}


def decade_ticks(largest: float) -> dict:
    """Log-axis ticks at 1, 10, 100, ... up to ``largest`` (plotly's own log ticks read "2 5 2 5" between decades)."""
    top = max(1, int(np.ceil(np.log10(max(float(largest), 1.0)))))
    decades = [10**k for k in range(top + 1)]
    return {"tickmode": "array", "tickvals": decades, "ticktext": [f"{d:,}" for d in decades]}


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG relative luminance of an sRGB colour with channels 0-255."""
    linear = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def cell_colours(values: np.ndarray, colorscale: str, low: float, high: float, *, reverse: bool = False) -> list[str]:
    """The colour a heatmap with ``colorscale`` over ``[low, high]`` gives each value (NaN: white, as plotly leaves it)."""
    from plotly.colors import get_colorscale, sample_colorscale

    scale = get_colorscale(colorscale)
    if reverse:
        scale = [[1 - stop, colour] for stop, colour in reversed(scale)]
    span = (high - low) or 1.0
    colours = []
    for value in np.asarray(values, dtype=float).ravel():
        if not np.isfinite(value):
            colours.append("rgb(255, 255, 255)")
            continue
        colours.append(sample_colorscale(scale, [min(max((value - low) / span, 0.0), 1.0)], colortype="rgb")[0])
    return colours


def readable_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` ("rgb(r, g, b)"): text that can be read on it."""
    from plotly.colors import unlabel_rgb

    light = _luminance(unlabel_rgb(background))
    on_white = 1.05 / (light + 0.05)  # contrast of white text
    on_black = (light + 0.05) / 0.05  # contrast of black text
    return "white" if on_white > on_black else "black"


def base_layout(fig: go.Figure, *, height: int = 380, title: str | None = None) -> go.Figure:
    # Subplot titles are annotations above each panel: they need room of their own under the title.
    subplot_titles = bool(fig.layout.annotations)
    top = (40 if title else 10) + (30 if subplot_titles else 0)
    fig.update_layout(
        height=height,
        title=title,
        margin={"l": 10, "r": 10, "t": top, "b": 10},
        font={"family": FONT, "size": 13},
        plot_bgcolor="white",
    )
    # Tick labels and axis titles take the room they need: with 10 px margins long labels were cut at the edge.
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def next_token_bar(predictions: NextTokenPredictions) -> go.Figure:
    """Horizontal bars of the top next tokens, most likely on top, in percent."""
    labels = plot_text(predictions.tokens)[::-1]
    percents = [100 * p for p in predictions.probabilities][::-1]
    fig = go.Figure(
        go.Bar(
            x=percents,
            y=labels,
            orientation="h",
            text=[f"{p:.1f}%" for p in percents],
            textposition="outside",
            marker_color="#5b4bdb",
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    fig.update_xaxes(title="probability of being the next token (%)", range=[0, max(percents) * 1.18 + 1], gridcolor="#eee")
    fig.update_yaxes(type="category")
    return base_layout(fig, height=60 + 32 * len(labels))
