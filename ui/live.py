"""Text that streams in as the engine decodes it, with Stop, and a rerun that cancels what it made stale.

A page run that streams is an ordinary Streamlit run: each token updates a placeholder, and each update is a point
where Streamlit can stop the run. So a slider moved mid-generation (a rerun), the Stop button (a rerun too) or the
toolbar's stop all end this run there, and the ``finally`` here cancels its engine rows at the next step boundary —
the stale request is never finished. What had streamed is kept in the session, so Stop leaves it on screen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import streamlit as st

from interp.engine import TokenEvent

CURSOR = " ▌"


@dataclasses.dataclass(frozen=True)
class Streamed:
    """What one streaming run showed: its texts (complete or cut short), and whether it finished."""

    key: str  # the settings it belongs to (a spec's digest)
    texts: tuple[str, ...]
    finished: bool


def stop_requested(key: str) -> bool:
    """True in the run right after this page's Stop button was pressed (the button's own rerun)."""
    return bool(st.session_state.get(f"{key}_stop"))


def last_streamed(key: str) -> Streamed | None:
    return st.session_state.get(f"{key}_streamed")


def stream_texts(
    key: str,
    settings: str,
    events: Iterator[tuple[int, TokenEvent]],
    slots: list[Any],
    prefixes: list[str],
    cancel: Callable[[], None],
) -> Streamed:
    """Show each row's text in ``slots`` as tokens arrive; returns the texts once every row has finished.

    ``key`` names this page's stream (its Stop button and kept texts); ``settings`` the settings being decoded
    (what was shown survives only for the same settings). ``cancel`` is called however this run ends.
    """
    texts = [""] * len(slots)
    st.button("Stop", key=f"{key}_stop", help="Stop generating; what has been written stays.")
    try:
        for row, event in events:
            texts[row] = event.text_so_far
            slots[row].text(prefixes[row] + texts[row] + CURSOR)
            st.session_state[f"{key}_streamed"] = Streamed(settings, tuple(texts), False)
    finally:
        cancel()  # stopped, rerun or failed: this request's rows leave the engine's batch at the next step
    done = Streamed(settings, tuple(texts), True)
    st.session_state[f"{key}_streamed"] = done
    return done
