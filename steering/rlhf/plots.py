"""Figures and tables for the Reward & RLHF page: best-of-N against its KL bound, DPO's training log,
the comparison's reward gain against perplexity, and the inside view layer by layer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from interp.plots import base_layout, integer_ticks
from steering.rlhf.best_of_n import BestOfN
from steering.rlhf.comparison import ComparisonResult
from steering.rlhf.dpo import DPOLogEntry
from steering.rlhf.inside import InsideView

LEGEND_BELOW = {"orientation": "h", "y": -0.25}
# What a reward number is: the Bradley–Terry logit the head was trained to give. Only differences mean something:
# a reply scoring d more than another is preferred with probability σ(d) (d = +1: 73%; +3.4: 97%).
REWARD_UNIT = "Bradley–Terry logits"
REWARD_SCALE = (
    "The reward is the Bradley–Terry head's logit: only a difference between two replies means something — "
    "a reply scoring 1 more than another is preferred with probability σ(1) ≈ 73% (2 more: 88%, 3 more: 95%). "
    "Its zero point is arbitrary."
)


def preference_probability(difference: float) -> float:
    """P(a ≻ b) under Bradley–Terry for a reward difference r(a) − r(b)."""
    return 1.0 / (1.0 + math.exp(-difference))


def best_of_n_figure(result: BestOfN) -> go.Figure:
    """Mean reward of the kept reply for each N, with the KL bound on a second axis."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(result.ns), y=result.mean_reward, mode="lines+markers", name="mean reward of the kept reply"))
    fig.add_trace(
        go.Scatter(x=list(result.ns), y=result.kl_bounds, mode="lines", name="KL bound (nats)", yaxis="y2", line={"dash": "dot"})
    )
    fig.update_layout(
        xaxis={"title": "N (replies sampled per prompt, log scale)", "type": "log", **integer_ticks(result.ns)},
        yaxis={"title": f"mean reward of the kept reply ({REWARD_UNIT})"},
        yaxis2={"title": "KL bound (nats)", "overlaying": "y", "side": "right"},
        legend=LEGEND_BELOW,
    )
    return base_layout(fig, height=360)


def best_of_n_table(result: BestOfN) -> pd.DataFrame:
    """Every sample of the first seed group with its reward, best first within each prompt."""
    rows = [
        {"prompt": p, "reply": t, "reward": round(r, 3)}
        for p, texts, rewards in zip(result.prompts, result.samples, result.rewards, strict=True)
        for t, r in zip(texts, rewards, strict=True)
    ]
    return pd.DataFrame(rows).sort_values(["prompt", "reward"], ascending=[True, False])


def dpo_log_figure(log: Sequence[DPOLogEntry]) -> go.Figure:
    """DPO loss (left axis) and reward margin (right axis) per training step."""
    steps = [e.step for e in log]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=[e.loss for e in log], mode="lines+markers", name="DPO loss"))
    fig.add_trace(go.Scatter(x=steps, y=[e.reward_margin for e in log], mode="lines+markers", name="reward margin", yaxis="y2"))
    fig.update_layout(
        xaxis={"title": "training step", **integer_ticks(steps)},
        yaxis={"title": "DPO loss (nats; log 2 ≈ 0.69 at the start)"},
        yaxis2={"title": "reward margin (β × log-ratio, nats)", "overlaying": "y", "side": "right"},
        legend=LEGEND_BELOW,
    )
    return base_layout(fig, height=320, title="DPO training")


def comparison_table(result: ComparisonResult) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": r.method,
                "reward": round(r.mean_reward, 3),
                "gain": round(r.reward_gain, 3),
                "perplexity": round(r.perplexity_under_base, 1),
                "cost": r.cost,
            }
            for r in result.rows
        ]
    )


def _padded(values: Sequence[float], share: float, least: float) -> list[float]:
    """An axis range around ``values`` with room on both sides (for labels drawn beside the points)."""
    finite = [v for v in values if math.isfinite(v)] or [0.0]
    low, high = min(finite), max(finite)
    pad = max((high - low) * share, least)
    return [low - pad, high + pad]


def comparison_figure(result: ComparisonResult) -> go.Figure:
    """Each method's reward gain over unsteered against its replies' perplexity under the unchanged model.

    The method names sit above their points; the ranges leave room for them, so none is cut at an edge.
    """
    table = comparison_table(result)
    fig = go.Figure(
        go.Scatter(
            x=table["perplexity"],
            y=table["gain"],
            mode="markers+text",
            text=table["method"],
            textposition="top center",
            cliponaxis=False,
            marker={"size": 12, "color": "#5b4bdb"},
        )
    )
    perplexities, gains = table["perplexity"].tolist(), table["gain"].tolist()
    fig.update_xaxes(title="perplexity under the unchanged model (lower = more fluent)", range=_padded(perplexities, 0.25, 1.0))
    fig.update_yaxes(title=f"reward gain over unsteered ({REWARD_UNIT})", range=_padded(gains, 0.3, 0.2))
    return base_layout(fig, height=360)


def inside_view_figure(view: InsideView) -> go.Figure:
    """How far DPO moved each layer's residual stream, and its cosine with the steering vector."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(view.layers), y=view.relative_change, name="relative change of the residual stream"))
    cosine = go.Scatter(x=list(view.layers), y=view.cosine_with_steering, name="cosine with the steering vector", yaxis="y2")
    fig.add_trace(cosine)
    fig.update_layout(
        yaxis={"title": "relative change |Δh| / |h| (ratio)"},
        yaxis2={"title": "cosine (−1..1)", "overlaying": "y", "side": "right", "range": [-1, 1]},
        xaxis={"title": "layer", **integer_ticks(view.layers)},
        legend=LEGEND_BELOW,
    )
    return base_layout(fig, height=360, title="Inside view: what DPO changed, layer by layer")
