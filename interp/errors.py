"""Errors that carry a message meant for the person using Steerscope.

Every error the core raises on bad input subclasses :class:`SteerscopeError`; its text says what
was wrong and what to do about it, so the app and the command line can show it as-is instead of
a traceback.
"""

from __future__ import annotations


class SteerscopeError(Exception):
    """Base class: an error whose message is written for the user."""


class ModelLoadError(SteerscopeError):
    """A model could not be found, read or wrapped; the message says what was looked for."""


class HookError(SteerscopeError):
    """An intervention named a hook point that does not exist, or left a hook behind."""


class InputError(SteerscopeError):
    """A prompt, file or setting the user gave cannot be used as it is."""
