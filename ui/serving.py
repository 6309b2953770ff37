"""Safe serving settings that hold however the app is started.

``.streamlit/config.toml`` is read from the working directory, so ``streamlit run /path/app.py``
started elsewhere gets Streamlit's defaults: every interface, full error details, 200 MB uploads,
usage statistics. app.py therefore calls :func:`guard` first thing:

* it applies the options Streamlit reads at run time (error details, upload size, usage
  statistics, the websocket's allowed hosts), unless the user set them explicitly;
* it refuses to serve, with a page that says how to start safely, when the server listens on
  anything but this machine, or when the page was reached under a name other than
  ``localhost``/``127.0.0.1`` (DNS rebinding: a web page pointing its own name at 127.0.0.1).

``STEERSCOPE_ALLOW_REMOTE=1`` switches both refusals off, for someone who serves other machines on
purpose. docs/SECURITY.md explains what protects the user and what does not.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any
from urllib.parse import urlparse

import streamlit as st
from streamlit import config

log = logging.getLogger("steerscope.ui")

ENV_ALLOW_REMOTE = "STEERSCOPE_ALLOW_REMOTE"
WHERE_DEFINED = "Steerscope's safe defaults (ui/serving.py)"
# Options Streamlit reads when it uses them (not only at start-up), so setting them here works.
SAFE_OPTIONS: dict[str, Any] = {
    "client.showErrorDetails": "none",  # read per exception
    "server.maxUploadSize": 20,  # MB; read per upload request and per file_uploader
    "browser.gatherUsageStats": False,  # read per new session; the app works offline
}
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"]  # server.allowedHosts: Host names a websocket may use
SAFE_START = "make app"
SAFE_COMMAND = "streamlit run app.py --server.address 127.0.0.1"


def remote_allowed() -> bool:
    """Whether the user opted in to serving other machines (``STEERSCOPE_ALLOW_REMOTE=1``)."""
    return os.environ.get(ENV_ALLOW_REMOTE, "").strip() == "1"


def is_loopback(host: str | None) -> bool:
    """Whether a bind address or host name means this machine only (127.0.0.0/8, ::1, localhost)."""
    name = (host or "").strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str | None:
    """The host name in a Host header ('127.0.0.1:8501' -> '127.0.0.1'), or None if malformed."""
    try:
        return urlparse(f"//{header.strip()}").hostname
    except ValueError:
        return None


def apply_safe_options() -> None:
    """Set the run-time options to Steerscope's safe values wherever the user did not set them."""
    options = dict(SAFE_OPTIONS)
    if not remote_allowed():
        options["server.allowedHosts"] = LOOPBACK_HOSTS
    for key, value in options.items():
        if not config.is_manually_set(key):
            config.set_option(key, value, where_defined=WHERE_DEFINED)


def serving_problem(bind_address: str | None, host_header: str | None) -> str | None:
    """Why this request must not be served, or None.

    Args:
        bind_address: ``server.address`` (None or "" means Streamlit's default, every interface).
        host_header: the Host header of this session's websocket (None when there is no HTTP
            client, as under AppTest).
    """
    if remote_allowed():
        return None
    address = (bind_address or "").strip()
    if not address.startswith("unix://") and not is_loopback(address):
        where = f"address {address}" if address else "every network interface (Streamlit's default)"
        return (
            f"This server listens on {where}, so other machines can reach it: anyone who can would "
            "run models on this computer and read the runs kept here. Steerscope serves only this machine."
        )
    if host_header is not None and not is_loopback(host_of(host_header)):
        return (
            "This page was reached under a name other than localhost or 127.0.0.1. A web page can point "
            "its own name at your computer (DNS rebinding) and drive a local app from your browser, so "
            "Steerscope answers only requests addressed to this machine."
        )
    return None


def _served_over_http() -> bool:
    # streamlit run sets the server mode; AppTest has none, and no HTTP headers either.
    return bool(getattr(config, "_server_mode", None)) or bool(st.context.headers)


def guard() -> bool:
    """Apply the safe options; return False (after drawing a refusal page) if this must not be served."""
    apply_safe_options()
    if not _served_over_http():
        return True
    host = st.context.headers.get("Host")
    problem = serving_problem(config.get_option("server.address"), host)
    if problem is None:
        return True
    log.warning("refusing to serve: %s", problem)
    port = config.get_option("server.port")

    def refusal() -> None:
        st.title("Steerscope is not serving this address")
        st.error(problem)
        st.markdown(
            f"Start it with `{SAFE_START}`, or with `{SAFE_COMMAND}`, and open "
            f"http://127.0.0.1:{port}/ on this machine. To serve other machines on purpose (a network you "
            f"trust, behind a proxy with authentication), set `{ENV_ALLOW_REMOTE}=1`: see docs/SECURITY.md."
        )

    # A navigation with this one page: every URL shows it, and pages/ cannot be reached around it.
    st.navigation([st.Page(refusal, title="Not serving", url_path="not-serving")], position="hidden").run()
    return False
