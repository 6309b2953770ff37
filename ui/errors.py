"""Show failures as messages, never as tracebacks: the error boundary of every page.

Two layers, one way of showing: :func:`shown_as_message` around one action of a page (the rest of the
page still draws), and :func:`page_boundary` around a whole page (``app.py`` wraps ``navigation.run()``
in it, so an exception no section caught still ends as a message, not Streamlit's error box).

A :class:`~interp.SteerscopeError` is shown as its own message, which says what to fix. Anything else
is a short notice of what failed, with a "Details" expander holding the exception's type and message;
its traceback goes to the ``steerscope`` logger (the server console), never to the browser. Every text
shown is Markdown-escaped: a message may quote a prompt, a file name or a path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st

from interp import SteerscopeError
from ui.render import md_escape

log = logging.getLogger("steerscope.ui")
DETAILS_LIMIT = 2_000  # characters of an exception's message shown in Details: a repr of a tensor can be megabytes


def _hint(exc: BaseException) -> str:
    """What the user can do about a kind of failure that is not a bug."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's is a RuntimeError
        return "It ran out of memory: try a shorter input or smaller settings. "
    if isinstance(exc, RecursionError):
        return "The input is nested too deeply to read. "
    return ""


def details(exc: BaseException) -> str:
    """The exception's type and message, shortened: what the Details expander shows (never a traceback)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= DETAILS_LIMIT else text[:DETAILS_LIMIT] + f" … ({len(text) - DETAILS_LIMIT:,} more characters)"


def show_error(action: str, exc: Exception) -> None:
    """Show ``exc`` on the page: a user error as its message; anything else as a notice, Details and a logged traceback.

    Args:
        action: What was being done, as the start of a sentence ("Predicting the next token").
        exc: The exception caught.
    """
    if isinstance(exc, SteerscopeError):
        st.error(md_escape(str(exc)))
        return
    log.error("%s failed", action, exc_info=exc)
    st.error(
        f"{md_escape(action)} failed unexpectedly ({type(exc).__name__}). {_hint(exc)}"
        "The details are below; the traceback is in the server log."
    )
    with st.expander("Details"):
        st.code(details(exc), language=None, wrap_lines=True)  # st.code shows text as-is: nothing in it is Markdown


@contextlib.contextmanager
def shown_as_message(action: str) -> Iterator[None]:
    """Run a page action; a failure is shown as a message (:func:`show_error`) and the rest of the page goes on.

    Streamlit's own stop and rerun signals are BaseExceptions and pass through untouched.
    """
    try:
        yield
    except Exception as exc:  # the last line of defence before the browser
        show_error(action, exc)


@contextlib.contextmanager
def page_boundary() -> Iterator[None]:
    """Around a whole page: whatever escaped every section ends as a message instead of Streamlit's error box."""
    with shown_as_message("This page"):
        yield
