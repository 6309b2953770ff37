"""Figures for patching sweeps, their attribution-patching estimates, and direct logit attribution."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from interp.circuits import SITE_TITLES, DirectLogitAttribution, FaithfulnessCurve, PatchingPair, PatchingResult
from interp.circuits.edges import INPUT, LOGITS
from interp.components import Component
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


def _node_position(name: str, n_layers: int, n_heads: int) -> tuple[float, float]:
    """Layers left to right (the input at -1, the logits at n_layers); heads top to bottom, the MLP below them."""
    if name == INPUT:
        return -1.0, (n_heads - 1) / 2
    if name == LOGITS:
        return float(n_layers), (n_heads - 1) / 2
    component = Component.from_label(name.replace(".mlp", ".mlp_out"))
    return float(component.layer), float(component.index if component.kind == "head" else n_heads + 0.3)


def circuit_graph(document: dict, n_layers: int, n_heads: int, *, title: str = "The circuit") -> go.Figure:
    """A circuit from :func:`interp.circuits.edges.circuit_document`: node size by importance, edge width by score.

    Head nodes carry ``customdata`` ``[layer, head]`` so a click can open the head's attention pattern.
    """
    fig = go.Figure()
    nodes = {node["node"]: node["importance"] for node in document["nodes"]}
    widest = max((abs(edge["score"]) for edge in document["edges"]), default=1.0) or 1.0
    middles_x, middles_y, middles_text = [], [], []
    for edge in document["edges"]:
        x0, y0 = _node_position(edge["source"], n_layers, n_heads)
        for target in edge["target_nodes"]:
            if target not in nodes:
                continue
            x1, y1 = _node_position(target, n_layers, n_heads)
            colour = "rgba(178,24,43,0.65)" if edge["score"] < 0 else "rgba(33,102,172,0.65)"
            fig.add_trace(
                go.Scatter(
                    x=[x0, x1],
                    y=[y0, y1],
                    mode="lines",
                    hoverinfo="skip",
                    showlegend=False,
                    line={"width": 1 + 9 * abs(edge["score"]) / widest, "color": colour},
                )
            )
            patched = "" if edge["patched"] is None else f"<br>really patched: {edge['patched']:+.3f} {document['unit']}"
            middles_x.append((x0 + x1) / 2)
            middles_y.append((y0 + y1) / 2)
            middles_text.append(f"{html.escape(edge['edge'])}<br>estimate {edge['score']:+.3f} {document['unit']}{patched}")
    fig.add_trace(
        go.Scatter(
            x=middles_x,
            y=middles_y,
            mode="markers",
            marker={"size": 6, "color": "rgba(0,0,0,0.25)"},
            text=middles_text,
            hovertemplate="%{text}<extra>edge</extra>",
            showlegend=False,
        )
    )
    biggest = max(nodes.values(), default=1.0) or 1.0
    names = list(nodes)
    positions = [_node_position(name, n_layers, n_heads) for name in names]
    head_of = [[Component.from_label(n).layer, Component.from_label(n).index] if ".H" in n else [-1, -1] for n in names]
    fig.add_trace(
        go.Scatter(
            x=[p[0] for p in positions],
            y=[p[1] for p in positions],
            mode="markers+text",
            text=names,
            textposition="top center",
            customdata=head_of,
            marker={
                "size": [12 + 28 * nodes[n] / biggest for n in names],
                "color": "#4c72b0",
                "line": {"width": 1, "color": "white"},
            },
            hovertext=[f"{n}<br>importance (sum of |edge scores|) {nodes[n]:.3f} {document['unit']}" for n in names],
            hovertemplate="%{hovertext}<extra>click a head to see its pattern</extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(
        title="layer",
        range=[-1.6, n_layers + 0.6],
        tickvals=[-1, *range(n_layers), n_layers],
        ticktext=["input", *map(str, range(n_layers)), "logits"],
    )
    fig.update_yaxes(title="head", autorange="reversed", tickvals=[*range(n_heads), n_heads + 0.3],
                     ticktext=[*(f"H{h}" for h in range(n_heads)), "MLP"])  # fmt: skip
    subtitle = f"{len(document['edges'])} edges of {document['edges_in_graph']:,}; blue raises, red lowers the metric"
    return base_layout(fig, height=max(360, 40 * (n_heads + 2)), title=f"{title} — {subtitle}")


def faithfulness_plot(curve: FaithfulnessCurve) -> go.Figure:
    """Faithfulness of the top-n circuit over its size (fraction of all edges), beside random circuits of that size."""
    x = list(curve.fractions)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=list(curve.random_high) + list(curve.random_low)[::-1],
            fill="toself",
            fillcolor="rgba(150,150,150,0.2)",
            line={"width": 0},
            hoverinfo="skip",
            name=f"random (range of {curve.random_repeats}; CPR {curve.random_cpr:.2f})",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=list(curve.random_mean),
            mode="lines+markers",
            line={"color": "gray", "dash": "dot"},
            name="random (mean)",
            customdata=list(curve.sizes),
            hovertemplate="%{customdata} random edges: %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=list(curve.faithfulness),
            mode="lines+markers",
            line={"color": "#4c72b0"},
            name=f"top edges by {curve.method.upper()}",
            customdata=list(zip(curve.sizes, curve.kept, strict=True)),
            hovertemplate="top %{customdata[0]} edges (%{customdata[1]} kept): %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=1.0, line={"color": "black", "width": 1, "dash": "dash"})
    ticks = [f for f in (0.001, 0.01, 0.1, 1.0) if min(x) <= f <= max(x)] or x
    fig.update_xaxes(type="log", title="circuit size (share of all edges, log scale)", tickvals=ticks,
                     ticktext=[f"{100 * f:g}%" for f in ticks])  # fmt: skip
    fig.update_yaxes(title="faithfulness (1 = full model, 0 = corrupted)")
    fig.update_layout(legend={"orientation": "h", "y": -0.3})
    return base_layout(fig, height=420, title=f"Faithfulness — CPR {curve.cpr:.3f}, CMD {curve.cmd:.3f}")
