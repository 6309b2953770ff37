"""Saying that a run waits for the shared model, and for what, instead of a spinner that only spins.

Every session of the server shares one model, and a run holds the model's lock while it uses it
(:mod:`interp.hooks`), so a one-second prediction can wait behind another session's minute-long sweep.
Until the engine interleaves requests, the least the page can do is say so:
"Waiting for another session's steering sweep to finish (started 12 s ago)". :func:`cached_run` wraps
every run in :func:`shown_while_waiting`, so each page's spinner or progress bar gets the notice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st

from interp.hooks import LockHolder, on_wait
from ui.render import md_escape


def waiting_message(holder: LockHolder) -> str:
    """What a waiting user reads (Markdown-safe): which run holds the model and since when."""
    description = holder.description
    if description[:1].isupper() and description[1:2].islower():  # "Steering sweep" reads "steering sweep"; "DPO" stays
        description = description[0].lower() + description[1:]
    return f"Waiting for another session's {md_escape(description)} to finish (started {holder.seconds:.0f} s ago)."


@contextlib.contextmanager
def shown_while_waiting() -> Iterator[None]:
    """While the block waits for the model's lock, show who holds it; the notice goes as soon as the wait ends."""
    slot: list = []  # the notice's placeholder, made only when there is a wait (no empty element otherwise)

    def show(holder: LockHolder | None) -> None:
        if not slot:
            slot.append(st.empty())
        if holder is None:
            slot[0].empty()
        else:
            slot[0].info(waiting_message(holder), icon="⏳")

    with on_wait(show):
        yield
