"""How the server runs: where it listens, who may call it, and the limits that keep one caller from starving the rest.

The settings are one frozen value made once at start-up (``python -m serve`` builds it from the command line and
``STEERSCOPE_API_KEY``); the app reads it and never changes it. :func:`check_bind` is the one rule that makes the
server refuse to start: listening on anything but this machine without an API key would hand the model (and the
vector library's uploads) to the whole network.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from interp.errors import InputError

ENV_API_KEY = "STEERSCOPE_API_KEY"
MIN_KEY_CHARS = 16  # a key short enough to guess is no key


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs to know besides the model.

    Attributes:
        api_key: when set, every route but ``/health`` needs ``Authorization: Bearer <key>``.
        max_body_bytes: the largest JSON body (a completion request); larger ones get 413 before they are read.
        max_upload_bytes: the largest vector file uploaded to ``/v1/vectors``.
        max_tokens: the most tokens one request may ask for (``max_tokens`` above it is a 400).
        default_max_tokens: what a chat request without ``max_tokens`` gets (completions follow OpenAI: 16).
        max_queue: requests admitted at once (waiting in the engine's queue plus decoding); one more gets 429.
        max_n: the most choices (``n``) one request may ask for.
        model: the model spec loaded at start-up (None: the embedded SmolLM2), for the record.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 20_000_000
    max_tokens: int = 512
    default_max_tokens: int = 128
    max_queue: int = 64
    max_n: int = 8
    model: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_upload_bytes", "max_tokens", "default_max_tokens", "max_queue", "max_n"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a whole number from 1 (got {value!r}).")
        if not 0 <= self.port <= 65535:
            raise InputError(f"The port must be in 0..65535 (got {self.port}).")
        if self.default_max_tokens > self.max_tokens:
            object.__setattr__(self, "default_max_tokens", self.max_tokens)
        if self.api_key is not None and len(self.api_key) < MIN_KEY_CHARS:
            raise InputError(
                f"The API key is {len(self.api_key)} characters; use at least {MIN_KEY_CHARS} (e.g. `openssl rand -hex 24`)."
            )


def api_key_from_env(given: str | None = None) -> str | None:
    """The key given on the command line, else ``STEERSCOPE_API_KEY``, else None (blank counts as none)."""
    key = given if given is not None else os.environ.get(ENV_API_KEY)
    key = (key or "").strip()
    return key or None


def is_loopback(host: str) -> bool:
    """Whether a bind address means this machine only (127.0.0.0/8, ::1, localhost)."""
    name = (host or "").strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(settings: ServerSettings) -> None:
    """Refuse (InputError) to listen beyond this machine without an API key."""
    if not is_loopback(settings.host) and not settings.api_key:
        raise InputError(
            f"Refusing to listen on {settings.host}: that lets other machines use the model and upload vectors. "
            f"Set an API key (--api-key or {ENV_API_KEY}=<at least {MIN_KEY_CHARS} characters>) or bind 127.0.0.1."
        )
