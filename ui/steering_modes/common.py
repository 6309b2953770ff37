"""What every steering mode's section shares: the mode's description, prompts typed one per line, and a result
started by a button that stays on screen through reruns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from interp.loading import LoadedModel
from interp.runs import RunSpec
from steering.vector import SteeringVector
from ui.cached import cached_run, is_cached
from ui.errors import shown_as_message
from ui.live import stop_requested

# Measured on SmolLM2 with the built-in sentiment vector (docs/PERFORMANCE.md): layer 4, coefficient 3 moves VADER both
# ways by 0.3+ while keeping perplexity within 2x. Where the sliders start, not a run default.
START_LAYER, START_COEFFICIENT = 4, 3.0

Draw = Callable[[LoadedModel, SteeringVector], None]


@dataclasses.dataclass(frozen=True)
class Mode:
    """A mode of the Steering page: its name (the widget's value), its label, and the function that draws it."""

    name: str
    label: str
    draw: Draw


def start_layer(layers: Sequence[int]) -> int:
    """Where a layer slider over ``layers`` starts: :data:`START_LAYER` if offered, else a fifth of the way in."""
    return START_LAYER if START_LAYER in layers else list(layers)[len(layers) // 5]


def prompt_lines(text: str) -> tuple[str, ...]:
    """The prompts typed into a text area, one per line (blank lines dropped; the spec says what is wrong with the rest)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def as_lines(prompts: Sequence[str]) -> str:
    return "\n".join(prompts)


def stored_result(model: LoadedModel, key: str, label: str) -> tuple[RunSpec | None, Any]:
    """The spec kept in the session under ``key`` (a run started by a button) and its result, or (None, None).

    Every rerun asks the cache, so the result stays on screen and only a changed spec recomputes (with a progress bar).
    """
    spec: RunSpec | None = st.session_state.get(key)
    if spec is None:
        return None, None
    slot = st.empty()
    with shown_as_message(label):
        result = cached_run(model, spec, lambda fraction, message: slot.progress(min(max(fraction, 0.0), 1.0), text=message))
        slot.empty()
        return spec, result
    return None, None  # the run failed: its message is shown


def stoppable_result(
    model: LoadedModel, key_spec: str, key_run: str, label: str, *, stopped: str = ""
) -> tuple[RunSpec | None, Any]:
    """:func:`stored_result` with a Stop button while it computes.

    Stop (like any click) ends this script run at the run's next progress report; the spec is then dropped, so the
    rerun shows that it stopped instead of starting the run again.

    Args:
        stopped: What the message after a stop says about the work done (default: that it is not kept).
    """
    if stop_requested(key_run) and st.session_state.pop(key_spec, None) is not None:
        st.info(f"{label} stopped; {stopped or 'what it had done is not kept. Press the button to start it again.'}")
    spec = st.session_state.get(key_spec)
    stop = st.empty()
    if spec is not None and not is_cached(model, spec):
        stop.button("Stop", key=f"{key_run}_stop", help="Stops after the current step.")
    spec, result = stored_result(model, key_spec, label)
    stop.empty()
    return spec, result
