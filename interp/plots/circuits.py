"""Figures for patching sweeps, their attribution-patching estimates, and direct logit attribution."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from interp.circuits import SITE_TITLES, DirectLogitAttribution, PatchingPair, PatchingResult
from interp.plots import base_layout, plot_text
from interp.tokens import unique_labels

RECOVERED = "share recovered: 1 = clean, 0 = corrupted"


def patching_heatmap(
    result: PatchingResult, position_labels: tuple[str, ...] | None = None, title: str | None = None
) -> go.Figure:
    """Layers (rows) x positions or heads (columns); for heads, each cell is clickable."""
    values = result.values
    labels = result.component_labels()
    peak = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    columns = list(result.column_labels)
    if result.kind != "heads" and position_labels is not None:
        columns = plot_text(unique_labels(list(position_labels)))
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=columns,
            y=list(result.row_labels),
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            zmin=-max(peak, 1e-6),
            zmax=max(peak, 1e-6),
            colorbar={"title": "recovered<br>(1 = clean,<br>0 = corrupted)", "thickness": 12},
            text=labels.tolist(),
            hovertemplate="%{text}<br>score %{z:.3f}<extra></extra>",
            hoverinfo="skip" if result.kind == "heads" else None,
        )
    )
    if result.kind == "heads":
        cells = [(r, c) for r in range(values.shape[0]) for c in range(values.shape[1])]
        fig.add_trace(
            go.Scatter(
                x=[columns[c] for _, c in cells],
                y=[result.row_labels[r] for r, _ in cells],
                mode="markers",
                marker={"size": 14, "symbol": "square", "color": "rgba(0,0,0,0)"},
                text=[labels[r, c] for r, c in cells],
                customdata=[float(values[r, c]) for r, c in cells],
                hovertemplate="head %{text}<br>score %{customdata:.3f}<extra>click to see its pattern</extra>",
                showlegend=False,
            )
        )
    fig.update_yaxes(autorange="reversed", type="category", title="layer")
    fig.update_xaxes(
        type="category", title="head" if result.kind == "heads" else "position", tickangle=-50 if result.kind != "heads" else 0
    )
    default_title = f"{SITE_TITLES[result.kind]} — {result.method} patching ({result.direction})"
    return base_layout(fig, height=max(320, 18 * values.shape[0] + 130), title=title or default_title)


def patching_agreement(pair: PatchingPair) -> go.Figure:
    """Attribution-patching estimate against the real patch, one point per site, titled by their rank correlation."""
    activation, attribution = pair.activation, pair.attribution
    labels = list(activation.component_labels().ravel())
    x, y = activation.values.ravel(), attribution.values.ravel()
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            text=labels,
            marker={"color": "#5b4bdb", "size": 7, "opacity": 0.7},
            showlegend=False,
            hovertemplate="%{text}<br>activation %{x:.3f}<br>attribution %{y:.3f}<extra></extra>",
        )
    )
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():
        low, high = float(min(x[finite].min(), y[finite].min())), float(max(x[finite].max(), y[finite].max()))
        fig.add_trace(
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                line={"dash": "dot", "color": "#999"},
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title=f"activation patching, exact ({RECOVERED})")
    fig.update_yaxes(title=f"attribution patching, estimate ({RECOVERED})")
    return base_layout(fig, height=380, title=f"Agreement: Spearman {pair.correlation:.2f}")


def dla_bar(dla: DirectLogitAttribution, k: int = 15) -> go.Figure:
    """The ``k`` largest direct contributions, one bar per component label."""
    ranked = dla.ranked(k)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in ranked],
            y=[label for label, _ in ranked],
            orientation="h",
            marker_color=["#5b4bdb" if v >= 0 else "#e07b18" for _, v in ranked],
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title=plot_text([f"direct contribution to {dla.metric_label} (logits)"])[0])
    fig.update_yaxes(type="category")
    return base_layout(fig, height=80 + 24 * len(ranked), title=f"Direct logit attribution (metric {dla.metric:.3f} logits)")
