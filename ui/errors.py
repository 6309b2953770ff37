"""Show failures as messages, never as tracebacks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from interp import SteerscopeError

log = logging.getLogger("steerscope.ui")


@contextlib.contextmanager
def shown_as_message(action: str) -> Iterator[None]:
    """Run a page action; a user error shows its own message, anything else a short notice.

    Unexpected errors are logged with their traceback on the server console (where a developer
    looks), and the page says what failed in a sentence (where the user looks).
    """
    try:
        yield
    except (RerunException, StopException):
        raise
    except SteerscopeError as exc:
        st.error(str(exc))
    except Exception as exc:  # the last line of defence before the browser
        log.exception("%s failed", action)
        st.error(f"{action} failed: {type(exc).__name__}: {exc}. The details are in the server log.")
