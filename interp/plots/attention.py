"""Figures for attention patterns, head scores and the logit lens."""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go

from interp.attention import SCORE_TITLES, AttentionResult, HeadScores
from interp.components import head_label, layer_label
from interp.lens import LensResult
from interp.plots import base_layout, decade_ticks, plot_text, plot_text_array
from interp.tokens import unique_labels

PATTERN_SCALE = "Purples"


def _pool(pattern: np.ndarray, cells: int) -> np.ndarray:
    """Max-pool a square pattern to at most ``cells`` x ``cells`` (thin diagonals stay visible)."""
    n = pattern.shape[0]
    if n <= cells:
        return pattern
    edges = np.linspace(0, n, cells + 1).astype(int)
    spans = list(itertools.pairwise(edges))
    return np.array([[pattern[a:b, c:d].max() for c, d in spans] for a, b in spans])


def head_grid(result: AttentionResult, *, cells: int = 20, gap: int = 3) -> go.Figure:
    """All heads as thumbnails: one column per layer, one row per head. Click a thumbnail to open it."""
    n_layers, n_heads = result.n_layers, result.n_heads
    size = min(cells, len(result.tokens))
    step = size + gap
    grid = np.full((n_heads * step - gap, n_layers * step - gap), np.nan)
    for layer in range(n_layers):
        for head in range(n_heads):
            thumb = _pool(result.head(layer, head), size)
            # Scale each thumbnail to its own maximum: a head that spreads attention thinly
            # would otherwise be invisible next to one that spikes on the first token.
            peak = thumb.max() or 1.0
            rows, cols = slice(head * step, head * step + size), slice(layer * step, layer * step + size)
            grid[rows, cols] = thumb / peak
    fig = go.Figure(go.Heatmap(z=grid, colorscale=PATTERN_SCALE, showscale=False, hoverinfo="skip"))
    centres = [(layer * step + size / 2, head * step + size / 2) for layer in range(n_layers) for head in range(n_heads)]
    fig.add_trace(_click_targets([x for x, _ in centres], [y for _, y in centres], size * 0.9, "head %{customdata}"))
    fig.data[-1].customdata = [head_label(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    fig.update_yaxes(
        autorange="reversed",
        tickvals=[head * step + size / 2 for head in range(n_heads)],
        ticktext=[f"H{head}" for head in range(n_heads)],
        showgrid=False,
        zeroline=False,
        title="head",
        scaleanchor="x",
        constrain="domain",
    )
    fig.update_xaxes(
        tickvals=[layer * step + size / 2 for layer in range(n_layers)],
        ticktext=[layer_label(layer) for layer in range(n_layers)],
        showgrid=False,
        zeroline=False,
        title="layer",
        constrain="domain",
    )
    return base_layout(fig, height=max(220, int(1150 * n_heads / n_layers) + 90))


def clicked_head(point_index: int, n_heads: int) -> tuple[int, int]:
    """``(layer, head)`` of a clicked target in :func:`head_grid` or :func:`score_heatmap`."""
    return divmod(int(point_index), n_heads)


def _click_targets(x: list, y: list, size_px: float, hover: str) -> go.Scatter:
    """Invisible markers over each cell: plotly heatmaps emit no selection events, scatter points do."""
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        marker={"size": max(size_px, 8), "symbol": "square", "color": "rgba(0,0,0,0)"},
        hovertemplate=hover + "<extra>click to open</extra>",
        showlegend=False,
    )


def pattern_heatmap(result: AttentionResult, layer: int, head: int) -> go.Figure:
    """One head's pattern, queries down the side and keys along the top, with hover values."""
    labels = plot_text(unique_labels(list(result.tokens)))
    pattern = result.head(layer, head).astype(float)
    pattern = np.where(np.tril(np.ones_like(pattern)) > 0, pattern, np.nan)  # blank the masked future
    fig = go.Figure(
        go.Heatmap(
            z=pattern,
            x=labels,
            y=labels,
            colorscale=PATTERN_SCALE,
            zmin=0,
            zmax=1,
            colorbar={"title": "attention weight (0–1)", "thickness": 12},
            hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_yaxes(autorange="reversed", type="category", title="query token", tickfont={"size": 10})
    fig.update_xaxes(type="category", title="key token (attended to)", tickangle=-60, tickfont={"size": 10})
    side = min(900, max(420, 14 * len(labels) + 160))
    return base_layout(fig, height=side, title=f"Head L{layer}.H{head}")


def score_heatmap(scores: HeadScores, name: str) -> go.Figure:
    """A layers x heads map of one head score; click a cell to open that head."""
    values = scores.score(name)
    n_layers, n_heads = values.shape
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"H{h}" for h in range(n_heads)],
            y=[layer_label(layer) for layer in range(n_layers)],
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar={"title": "score (mean attention, 0–1)", "thickness": 12},
            hoverinfo="skip",
        )
    )
    cells = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    targets = _click_targets(
        [f"H{head}" for _, head in cells],
        [layer_label(layer) for layer, _ in cells],
        14,
        "head %{y}.%{x}<br>" + SCORE_TITLES[name].lower() + " score %{customdata:.3f}",
    )
    targets.customdata = [float(values[layer, head]) for layer, head in cells]
    fig.add_trace(targets)
    fig.update_yaxes(autorange="reversed", type="category", title="layer")
    fig.update_xaxes(type="category", title="head", side="top")
    return base_layout(fig, height=max(320, 22 * n_layers + 80))


def lens_heatmap(lens: LensResult) -> go.Figure:
    """Layers x positions, coloured by the top token's probability and labelled with that token."""
    probs = lens.top_probs[..., 0]
    positions = plot_text(unique_labels(list(lens.tokens)))
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=positions,
            y=list(lens.layer_labels),
            text=plot_text_array(lens.top_tokens[..., 0]),
            texttemplate="%{text}" if len(positions) <= 40 else None,
            textfont={"size": 9},
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "top-1 probability (0–1)", "thickness": 12},
            hovertemplate="after %{y} at %{x}<br>top token %{text}<br>probability %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category", title="residual stream after")
    fig.update_xaxes(type="category", title="position (input token)", tickangle=-60, tickfont={"size": 10})
    return base_layout(fig, height=max(380, 18 * len(lens.layer_labels) + 140))


def lens_target_line(lens: LensResult, position: int = -1) -> go.Figure:
    """Probability (left axis) and rank (right axis, log) of the target token at one position, per layer."""
    if lens.target_probs is None or lens.target_ranks is None:
        raise ValueError("This lens was computed without a target token.")
    layers = list(lens.layer_labels)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=100 * lens.target_probs[:, position],
            name="probability (%)",
            mode="lines+markers",
            line={"color": "#5b4bdb"},
            hovertemplate="%{x}: %{y:.2f}%<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=lens.target_ranks[:, position],
            name="rank (1 = top)",
            mode="lines",
            yaxis="y2",
            line={"color": "#e07b18", "dash": "dot"},
            hovertemplate="%{x}: rank %{y:,}<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis={"title": plot_text([f"P({lens.target!r}) (%)"])[0], "rangemode": "tozero"},
        yaxis2={
            "title": "rank (1 = top, log scale)",
            "overlaying": "y",
            "side": "right",
            "type": "log",
            "autorange": "reversed",
            **decade_ticks(float(lens.target_ranks[:, position].max())),
        },
        xaxis={"title": "residual stream after", "type": "category"},
        legend={"orientation": "h", "y": 1.12},
    )
    return base_layout(fig, height=360)
