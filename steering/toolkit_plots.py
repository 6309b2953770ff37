"""Figures for the steering modes beyond addition (the Steering page shows them; they take a result, return a figure)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.plots import base_layout, plot_text
from steering.compose import UNSTEERED, Composition
from steering.record import SteeredRecording
from steering.reliability import PairConsistency
from steering.toolkit_runs import ConditionalResult, OrthogonalisedArchive

# Hooks and saved weights compute the same function; what is left is float32 rounding, which grows with depth and logit
# size: 6e-6 on the tiny test model, 1.05e-4 on SmolLM2-135M (30 layers, logits up to ~20) for the refusal direction.
PARITY_LIMIT = 1e-3


def condition_projections_plot(result: ConditionalResult) -> go.Figure:
    """Each prompt's projection on the condition direction, by group, with the fitted threshold as a line."""
    figure = go.Figure()
    fired = [s for s in result.samples if s.fires]
    skipped = [s for s in result.samples if not s.fires]
    groups = [
        ("labelled 'on'", result.on_projections, "#5b4bdb", "circle", None),
        ("labelled 'off'", result.off_projections, "#e67814", "circle", None),
        ("test: fires", [s.projection for s in fired], "#1f7a1f", "diamond", fired),
        ("test: does not fire", [s.projection for s in skipped], "#7f7f7f", "diamond", skipped),
    ]
    for name, values, colour, symbol, samples in groups:
        hover = [s.prompt[:80] for s in samples] if samples is not None else None
        figure.add_trace(
            go.Scatter(
                x=list(values), y=[name] * len(values), mode="markers", name=name, text=hover,
                marker={"color": colour, "symbol": symbol, "size": 11, "line": {"width": 1, "color": "white"}},
                hovertemplate="%{x:+.3f}<br>%{text}<extra></extra>" if hover else "%{x:+.3f}<extra></extra>",
            )
        )  # fmt: skip
    figure.add_vline(x=result.threshold, line_dash="dash", annotation_text=f"threshold {result.threshold:+.3f}")
    figure.update_layout(
        title=f"Projection on the condition direction (cosine, layer {result.condition_layer})",
        xaxis_title="cosine of the prompt's mean resid_pre with the condition direction",
        showlegend=False,
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return figure


def parity_plot(archive: OrthogonalisedArchive) -> go.Figure:
    """Per prompt position: max |logit difference| hooks vs saved weights, beside the ablation's own effect (log scale)."""
    positions = [f"{i}: {token}" for i, token in enumerate(archive.tokens)]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(x=positions, y=list(archive.original_vs_ablated), name="model vs ablated (the effect)", marker_color="#c9c3f5")
    )
    figure.add_trace(go.Bar(x=positions, y=list(archive.hooks_vs_weights), name="hooks vs saved weights", marker_color="#5b4bdb"))
    figure.add_hline(y=PARITY_LIMIT, line_dash="dash", annotation_text=f"{PARITY_LIMIT:g}")
    figure.update_layout(
        title="max |logit difference| per position",
        yaxis={"type": "log", "title": "logits"},
        barmode="group",
        height=320,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.3},
    )
    return figure


def pair_consistency_plot(consistency: PairConsistency) -> go.Figure:
    """Each training pair's cosine with the vector's direction, in pair order, with the mean as a line."""
    pairs = list(range(1, len(consistency.cosines) + 1))
    colours = ["#e67814" if c <= 0 else "#5b4bdb" for c in consistency.cosines]
    figure = go.Figure(
        go.Bar(x=pairs, y=list(consistency.cosines), marker_color=colours, hovertemplate="pair %{x}: %{y:+.2f}<extra></extra>")
    )
    figure.add_hline(y=consistency.mean, line_dash="dash", annotation_text=f"mean {consistency.mean:+.2f}")
    figure.update_layout(
        title=f"Each pair's difference vs the vector (cosine, layer {consistency.layer})",
        xaxis_title="pair",
        yaxis={"range": [-1, 1], "title": "cosine"},
        height=260,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return figure


# ---------------------------------------------------------------------------------------------
# Combine vectors (steering/compose.py) and Look inside (steering/record.py)

CONDITION_COLOURS = ("#9e9e9e", "#5b4bdb", "#e07b18", "#1f7a1f", "#c2185b", "#00838f", "#6d4c41", "#7cb342", "#3949ab")


def composition_bars(result: Composition, units: dict[str, str] | None = None) -> go.Figure:
    """Per behaviour (one panel each, its own scale): its mean score under every condition, and the additive prediction.

    Args:
        units: The unit of each behaviour's scorer, by scorer name (for the panels' axes).
    """
    table = result.table()
    names = result.condition_names
    figure = make_subplots(
        rows=1, cols=len(result.behaviours), subplot_titles=plot_text(result.behaviours), horizontal_spacing=0.12
    )
    for b, scorer in enumerate(result.scorers):
        col = b + 1
        for k, name in enumerate(names):
            figure.add_trace(
                go.Bar(
                    x=[name], y=[float(table[b, k])], name=name, legendgroup=name, showlegend=b == 0,
                    marker_color=CONDITION_COLOURS[k % len(CONDITION_COLOURS)],
                    hovertemplate=f"{name}<br>%{{y:+.3f}}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        figure.add_trace(
            go.Bar(
                x=["additive prediction"], y=[float(result.additive_prediction[b])], name="additive prediction",
                legendgroup="additive", showlegend=b == 0, marker={"color": "white", "line": {"color": "#333", "width": 2}},
                marker_pattern_shape="/", hovertemplate="additive prediction<br>%{y:+.3f}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        unit = (units or {}).get(scorer, "score")
        figure.update_yaxes(title_text=plot_text([f"{scorer} ({unit})"])[0], row=1, col=col)
        figure.update_xaxes(showticklabels=False, row=1, col=col)
    figure.update_layout(legend={"orientation": "h", "y": -0.15}, bargap=0.15)
    return base_layout(figure, height=380, title="Each behaviour under each condition (mean over the samples)")


def composition_damage_bars(result: Composition) -> go.Figure:
    """Per condition: the perplexity ratio (x unsteered) and the mean KL(unsteered ‖ steered) in nats, side by side."""
    names = list(result.condition_names)
    colours = [CONDITION_COLOURS[k % len(CONDITION_COLOURS)] for k in range(len(names))]
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("Perplexity under the unsteered model (x unsteered)", "KL(unsteered ‖ steered), nats")
    )
    ratios = [float(r) if np.isfinite(r) else None for r in result.perplexity_ratio]
    figure.add_trace(
        go.Bar(x=names, y=ratios, marker_color=colours, showlegend=False, hovertemplate="%{x}<br>x%{y:.2f}<extra></extra>"),
        row=1, col=1,
    )  # fmt: skip
    figure.add_hline(y=1.0, line_dash="dot", line_color="#999", row=1, col=1)
    kls = [float(k) if np.isfinite(k) else None for k in result.kl]
    figure.add_trace(
        go.Bar(x=names, y=kls, marker_color=colours, showlegend=False, hovertemplate="%{x}<br>%{y:.3f} nats<extra></extra>"),
        row=1, col=2,
    )  # fmt: skip
    return base_layout(figure, height=340, title=f"Damage of each condition (0 KL and x1 for {UNSTEERED})")


def _position_axis(recording: SteeredRecording) -> dict:
    """Tick every position with its token (numbered: a token can repeat, and categorical axes would merge repeats)."""
    labels = plot_text(recording.tokens)
    return {"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels, "tickangle": -60}


def recording_projection_heatmap(recording: SteeredRecording, vector: int = 0) -> go.Figure:
    """Per recorded layer (rows) and position (columns): the activation's component along the vector's unit direction,
    as the steered generation ran; a line where the generated positions begin."""
    names = list(recording.names)
    values = np.stack([recording.projection(name, vector) for name in names])  # [layers, positions]
    peak = float(np.abs(values[np.isfinite(values)]).max()) if np.isfinite(values).any() else 1.0
    figure = go.Figure(
        go.Heatmap(
            z=values.tolist(), x=list(range(values.shape[1])), y=names, colorscale="RdBu", zmid=0.0, zmin=-peak, zmax=peak,
            customdata=np.broadcast_to(np.array(plot_text(recording.tokens), dtype=object), values.shape),
            colorbar={"title": "residual units"},
            hovertemplate="%{y}<br>position %{x}: %{customdata}<br>projection %{z:+.3f}<extra></extra>",
        )
    )  # fmt: skip
    figure.add_vline(x=recording.n_prompt - 0.5, line_dash="dash", line_color="#333", annotation_text="generated →")
    figure.update_xaxes(**_position_axis(recording))
    figure.update_yaxes(autorange="reversed")
    height = max(300, 60 + 18 * len(names))
    return base_layout(figure, height=height, title="Component along the vector's direction, while it steered")


def recording_norm_plot(recording: SteeredRecording, names: list[str]) -> go.Figure:
    """The activation's L2 norm per position at the hook points ``names`` (residual units)."""
    figure = go.Figure()
    for name in names:
        norms = recording.norms[name]
        figure.add_trace(
            go.Scatter(
                x=list(range(len(norms))), y=[float(n) for n in norms], mode="lines+markers", name=name,
                customdata=plot_text(recording.tokens),
                hovertemplate=f"{name}<br>position %{{x}}: %{{customdata}}<br>norm %{{y:.2f}}<extra></extra>",
            )
        )  # fmt: skip
    figure.add_vline(x=recording.n_prompt - 0.5, line_dash="dash", line_color="#333", annotation_text="generated →")
    figure.update_xaxes(**_position_axis(recording))
    figure.update_yaxes(title="‖x‖ (residual units)", rangemode="tozero")
    figure.update_layout(legend={"orientation": "h", "y": -0.45})
    return base_layout(figure, height=340, title="Norm of the residual stream per position")
