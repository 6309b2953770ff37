"""Figures for attributions: methods side by side, faithfulness curves, batch aggregates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.attribution import METHODS, Attribution, Faithfulness
from interp.attribution.targets import ResolvedTarget
from interp.plots import base_layout, integer_ticks, plot_text
from interp.tokens import unique_labels

PALETTE = ["#5b4bdb", "#e07b18", "#1b9e77", "#d6336c", "#5c7080"]


def normalised(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their largest magnitude, so methods in different units share one colour scale."""
    peak = float(np.abs(scores).max())
    return scores / peak if peak > 0 else scores


def method_comparison(attributions: Sequence[Attribution]) -> go.Figure:
    """Methods (rows) x prompt tokens (columns), each row scaled to its own largest magnitude."""
    tokens = plot_text(unique_labels(list(attributions[0].tokens)))
    z = np.stack([normalised(a.scores) for a in attributions])
    raw = np.stack([a.scores for a in attributions])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=tokens,
            y=[a.title for a in attributions],
            customdata=raw,
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            zmin=-1,
            zmax=1,
            colorbar={"title": "score (share of the row's largest, −1..1)", "thickness": 12},
            hovertemplate="%{y}<br>token %{x}<br>score %{customdata:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-50, title="prompt token")
    fig.update_yaxes(type="category", autorange="reversed")
    return base_layout(fig, height=120 + 42 * len(attributions))


def target_unit(target: ResolvedTarget | None) -> str:
    """The unit of a target's value: log-probabilities are in nats, a contrast of two logits in logits."""
    if target is None:
        return "nats for a log-probability, logits for a contrast"
    if target.kind == "contrast":
        return "logits"
    if target.kind == "scalar":
        return "the target's own units"
    return "nats"


def faithfulness_curves(curves: Sequence[Faithfulness], target: ResolvedTarget | None = None) -> go.Figure:
    """Deletion (most important first) and insertion curves, one line per method.

    ``target`` (the attributions' resolved target) names the value and its unit on the y-axis.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "Deletion: remove top tokens (lower = more faithful)",
            "Insertion: keep only top tokens (higher = better)",
        ),
    )
    for i, curve in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        name = METHODS[curve.method].title
        x = 100 * curve.fractions
        fig.add_trace(
            go.Scatter(x=x, y=curve.deletion, name=name, line={"color": colour}, legendgroup=name,
                       hovertemplate=name + "<br>%{x:.0f}% removed: %{y:.3f}<extra></extra>"),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=x, y=curve.insertion, name=name, line={"color": colour, "dash": "dot"}, legendgroup=name,
                       showlegend=False, hovertemplate=name + "<br>%{x:.0f}% kept: %{y:.3f}<extra></extra>"),
            row=1, col=2,
        )  # fmt: skip
    fig.update_xaxes(title="tokens removed (%)", row=1, col=1)
    fig.update_xaxes(title="tokens kept (%)", row=1, col=2)
    value = target.label if target is not None else "target value"
    fig.update_yaxes(title=plot_text([f"{value} ({target_unit(target)})"])[0])
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return base_layout(fig, height=400)


def driving_tokens_bar(frame: pd.DataFrame, method: str, top: int = 15) -> go.Figure:
    """How often each token is among a prompt's top tokens, for one method, across the batch."""
    rows = frame[frame["method"] == method].head(top).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=rows["times_in_top"],
            y=plot_text(rows["token"]),
            orientation="h",
            marker_color=PALETTE[0],
            customdata=rows["mean_score"],
            hovertemplate="%{y}: in the top tokens of %{x} prompt(s)<br>mean score %{customdata:.3f}<extra></extra>",
        )
    )
    most = int(rows["times_in_top"].max()) if len(rows) else 0
    fig.update_xaxes(title="prompts where the token is among the top 3 (count)", **integer_ticks(range(most + 1)))
    fig.update_yaxes(type="category")
    return base_layout(fig, height=80 + 26 * len(rows), title=f"Tokens that most often drive the target ({method})")
