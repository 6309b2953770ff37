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
