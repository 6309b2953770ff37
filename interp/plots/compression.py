"""Figures for a compression study: the quality / size / speed trade-off, and what changed inside each variant."""

from __future__ import annotations

import plotly.graph_objects as go

from interp.compression.study import CompressionStudy
from interp.plots import base_layout, plot_text


def tradeoff_plot(study: CompressionStudy) -> go.Figure:
    """Perplexity (log) against weight memory, one point per variant and the original; marker size by decode speed."""
    base = study.original
    original_ppl = study.rows[0].quality.original_perplexity if study.rows else float("nan")
    names = ["original", *(row.variant.describe() for row in study.rows)]
    memory = [base.weight_bytes / 2**20, *(row.footprint.weight_bytes / 2**20 for row in study.rows)]
    perplexity = [original_ppl, *(row.quality.perplexity for row in study.rows)]
    speed = [base.decode_tokens_per_second, *(row.footprint.decode_tokens_per_second for row in study.rows)]
    fastest = max(speed) or 1.0
    fig = go.Figure(
        go.Scatter(
            x=memory, y=perplexity, mode="markers+text", text=plot_text(names),
            textposition=["top center" if i % 2 == 0 else "bottom center" for i in range(len(names))],
            marker={"size": [10 + 25 * s / fastest for s in speed], "color": ["#333333"] + ["#4c72b0"] * len(study.rows)},
            customdata=speed, hovertemplate="%{text}<br>%{x:.0f} MiB, perplexity %{y:.1f}<br>decode %{customdata:.1f} tokens/s"
            "<extra></extra>", showlegend=False,
        )
    )  # fmt: skip
    fig.update_xaxes(title="weights in memory (MiB)", range=[0.6 * min(memory), 1.15 * max(memory)])  # room for labels
    fig.update_yaxes(title="held-out perplexity (log scale)", type="log")
    return base_layout(fig, height=420, title="Quality against size (marker size: decode speed)")


def inside_plot(study: CompressionStudy) -> go.Figure:
    """Each of the original's induction and previous-token heads: its score in the original and in every variant."""
    fig = go.Figure()
    if not study.rows:
        return base_layout(fig, title="What changed inside")
    first = study.rows[0].inside
    heads = [(f"{head} (induction)", before) for head, before, _ in first.induction_heads]
    heads += [(f"{head} (previous token)", before) for head, before, _ in first.previous_token_heads]
    labels = plot_text(name for name, _ in heads)
    fig.add_trace(go.Bar(name="original", x=labels, y=[before for _, before in heads], marker_color="#333333"))
    for row in study.rows:
        after = [a for _, _, a in row.inside.induction_heads] + [a for _, _, a in row.inside.previous_token_heads]
        fig.add_trace(go.Bar(name=plot_text([row.variant.describe()])[0], x=labels, y=after))
    fig.add_hline(y=0.0, line={"width": 1})
    fig.update_xaxes(title="the original's typed heads", type="category")
    fig.update_yaxes(title="head-type score (0-1)", range=[0, 1])
    fig.update_layout(barmode="group")  # the legend on the right, clear of the title
    return base_layout(fig, height=460, title="What changed inside: the typed heads' scores")
