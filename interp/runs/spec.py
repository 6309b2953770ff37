"""A run is a value: one frozen dataclass per kind of run holds exactly its settings.

A spec is what a page builds from its widgets, what "Keep this run" stores (with the result), what a
replay runs again, and what the engine, the server and batch workers receive. Each kind of run is one
subclass with a class-level ``kind`` (its stable name in records) and a ``run(model, progress)`` that
returns the run's result dataclass. Defining the class registers it (see :mod:`interp.runs.registry`);
nothing else needs to learn its name.

Specs validate themselves in ``__post_init__`` with the messages a user sees, so a bad setting fails
the same way from a page, the CLI, Python or a replayed record.

Example:
    >>> spec = AttentionRun(prompt="When Mary and John went to the store")
    >>> result = spec.run(model)
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from interp.loading import LoadedModel
from interp.validation import check_choice, check_count, check_finite  # noqa: F401 (the checks every spec uses, here too)

Progress = Callable[[float, str], None]  # (fraction done in 0..1, what is happening now)
StopCheck = Callable[[], bool]  # True when the user asked to stop


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Several named results kept as one (e.g. activation and attribution patching of the same pair)."""

    parts: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Base class of every kind of run. Subclasses are frozen dataclasses that set ``kind``."""

    kind: ClassVar[str] = ""  # the record's name for this kind; set once, never renamed
    title: ClassVar[str] = ""  # what a person calls it ("Steering sweep")
    tolerance: ClassVar[float] = 0.0  # how closely a replay must agree; 0 = bitwise
    # The core functions whose keyword defaults this spec's defaults are (tests/runs/test_defaults.py checks).
    mirrors: ClassVar[tuple[Callable[..., Any], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            from interp.runs.registry import register

            register(cls)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not say how it runs.")

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of setting ``name``, so a widget starts where the spec does (defaults live here only)."""
        for field in dataclasses.fields(cls):
            if field.name == name:
                if field.default is not dataclasses.MISSING:
                    return field.default
                if field.default_factory is not dataclasses.MISSING:
                    return field.default_factory()
                raise KeyError(f"{cls.__name__}.{name} has no default")
        raise KeyError(f"{cls.__name__} has no setting {name!r}")

    def settings(self) -> dict[str, Any]:
        """The settings as plain values for tables, search and MLflow params (large values summarised)."""
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def digest(self) -> str:
        """A short hash of every setting (arrays included): equal specs give equal digests (cache keys)."""
        from interp.serialise import dumps

        text, blob = dumps(self)
        return hashlib.sha256(text.encode() + b"\0" + blob).hexdigest()[:20]


def default_of(function: Callable[..., Any], name: str) -> Any:
    """The default of ``function``'s parameter ``name``: a spec's default taken from the function it runs,
    so the two cannot drift apart."""
    parameter = inspect.signature(function).parameters[name]
    if parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}() has no default for {name!r}")
    return parameter.default


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        if len(value) <= 12 and all(v is None or isinstance(v, bool | int | float | str) for v in value):
            return list(value)
        if len(value) <= 12 and all(dataclasses.is_dataclass(v) for v in value):
            return [_plain(v) for v in value]  # e.g. the methods of a comparison, each named
        return f"{len(value)} items"
    if dataclasses.is_dataclass(value):
        describe = getattr(value, "describe", None) or getattr(value, "title", None)
        text = describe() if callable(describe) else describe
        return f"{type(value).__name__}: {text}" if isinstance(text, str) else type(value).__name__
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return type(value).__name__
