"""Figures of the automatic steering search (steering/search.py): one direction's trials, its front and its choice."""

from __future__ import annotations

import math
from typing import Literal

import plotly.graph_objects as go

from interp.plots import base_layout
from steering.plots import score_unit
from steering.search import DirectionSearch, SearchTrial

Damage = Literal["perplexity_ratio", "kl"]
DAMAGE_TITLES = {
    "perplexity_ratio": "damage: perplexity under the unsteered model (x unsteered)",
    "kl": "damage: KL(unsteered ‖ steered), nats",
}


def _damage(trial: SearchTrial, damage: Damage) -> float:
    return trial.perplexity_ratio if damage == "perplexity_ratio" else trial.kl


def _shown(trials: tuple[SearchTrial, ...], damage: Damage) -> list[SearchTrial]:
    """The trials a plot can place: finite gain and damage (an unscorable text has an infinite perplexity ratio)."""
    return [t for t in trials if math.isfinite(t.gain) and math.isfinite(_damage(t, damage))]


def unplotted_trials(search: DirectionSearch, damage: Damage = "perplexity_ratio") -> int:
    """How many trials :func:`search_front_plot` leaves out (infinite or unknown damage or gain)."""
    return len(search.trials) - len(_shown(search.trials, damage))


def search_front_plot(
    search: DirectionSearch, scorer: str, max_perplexity_ratio: float, damage: Damage = "perplexity_ratio"
) -> go.Figure:
    """Every trial as behaviour gain (± one standard error over the search prompts) against damage (grey), the
    Pareto front joined, the chosen trial (the largest gain − one standard error within the limits) starred.

    Args:
        search: One direction's study.
        scorer: The scorer's name as the result stores it (for the gain's unit).
        max_perplexity_ratio: The limit the choice respected, drawn as a line on the perplexity axis.
        damage: ``"perplexity_ratio"`` or ``"kl"`` on the x axis (the front is the perplexity front either way).
    """
    figure = go.Figure()
    trials = _shown(search.trials, damage)
    hover = (
        "%{text}<br>gain %{y:+.3f} ± %{customdata[2]:.3f} (one standard error)<br>perplexity x%{customdata[0]:.2f}"
        "<br>KL %{customdata[1]:.3f} nats<extra></extra>"
    )
    figure.add_trace(
        go.Scatter(
            x=[_damage(t, damage) for t in trials], y=[t.gain for t in trials], mode="markers", name="trials",
            text=[f"trial {t.number}: {t.describe()}" for t in trials],
            customdata=[(t.perplexity_ratio, t.kl, t.gain_se) for t in trials], marker={"color": "#b5b5b5", "size": 9},
            error_y={"type": "data", "array": [t.gain_se for t in trials], "color": "#d0d0d0", "thickness": 1, "width": 0},
            hovertemplate=hover,
        )
    )  # fmt: skip
    front = sorted(_shown(search.front, damage), key=lambda t: _damage(t, damage))
    figure.add_trace(
        go.Scatter(
            x=[_damage(t, damage) for t in front], y=[t.gain for t in front], mode="lines+markers", name="Pareto front",
            text=[f"trial {t.number}: {t.describe()}" for t in front],
            customdata=[(t.perplexity_ratio, t.kl, t.gain_se) for t in front], line={"color": "#5b4bdb"},
            marker={"color": "#5b4bdb", "size": 10}, hovertemplate=hover,
        )
    )  # fmt: skip
    chosen = search.chosen
    if chosen is not None and chosen in trials:
        figure.add_trace(
            go.Scatter(
                x=[_damage(chosen, damage)], y=[chosen.gain], mode="markers", name=f"chosen: {chosen.describe()}",
                marker={"symbol": "star", "size": 20, "color": "#e07b18", "line": {"width": 1, "color": "white"}},
                hoverinfo="skip",
            )
        )  # fmt: skip
    if damage == "perplexity_ratio":
        limit = f"limit x{max_perplexity_ratio:g}"
        figure.add_vline(x=max_perplexity_ratio, line_dash="dot", line_color="#999", annotation_text=limit)
    figure.add_hline(y=0.0, line_color="#ddd")
    figure.update_xaxes(title=DAMAGE_TITLES[damage])
    goal = "raise" if search.direction == "raise" else "lower"
    figure.update_yaxes(title=f"behaviour gain toward '{goal}' ({score_unit(scorer)})")
    figure.update_layout(legend={"orientation": "h", "y": -0.3})
    return base_layout(figure, height=380, title=f"{goal.capitalize()}: {len(search.trials)} trials on the search prompts")
