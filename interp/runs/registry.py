"""Which kinds of run exist, and which packages may define them.

Packages that define run kinds (and the result types their records hold) declare themselves as
``steerscope.runs`` entry points in ``pyproject.toml`` — the standard Python plugin mechanism — so the
core never names them: ``interp`` knows nothing of ``steering``, and a third package can add run
kinds without touching either. A spec class registers itself when it is defined
(:class:`interp.runs.spec.RunSpec`); :func:`run_kinds` first imports every declared package's modules
so the list is complete however the caller got here.

The same list bounds what a record may name: the serialiser rebuilds only dataclasses defined in a
declared package, so a record cannot make Steerscope import or run anything else.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil
import threading
from typing import TYPE_CHECKING

from interp.errors import InputError

if TYPE_CHECKING:
    from interp.runs.spec import RunSpec

ENTRY_POINT_GROUP = "steerscope.runs"
CORE_PACKAGE = "interp"  # the core itself always counts, installed or not

_kinds: dict[str, type[RunSpec]] = {}
_loading = threading.Lock()
_loaded = False


def register(spec_class: type[RunSpec]) -> None:
    """Called by :class:`RunSpec` for each subclass that sets ``kind``."""
    kind = spec_class.kind
    existing = _kinds.get(kind)
    if existing is not None and (existing.__module__, existing.__qualname__) != (spec_class.__module__, spec_class.__qualname__):
        raise TypeError(f"Run kind {kind!r} is defined twice: {existing.__module__}.{existing.__qualname__} and {spec_class}.")
    _kinds[kind] = spec_class  # re-definition of the same class (a module reload) replaces it


@functools.cache
def run_packages() -> tuple[str, ...]:
    """The packages allowed to define run kinds and result types: the core plus the declared ones."""
    declared = [entry.value for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return tuple(dict.fromkeys([CORE_PACKAGE, *declared]))


def _load_packages() -> None:
    global _loaded
    with _loading:
        if _loaded:
            return
        for package_name in run_packages():
            package = importlib.import_module(package_name)
            for module in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
                if not module.name.rsplit(".", 1)[-1].startswith("_"):  # skip __main__ and private helpers
                    importlib.import_module(module.name)
        _loaded = True


def run_kinds() -> dict[str, type[RunSpec]]:
    """Every kind of run, by its record name."""
    _load_packages()
    return dict(sorted(_kinds.items()))


def spec_class(kind: str) -> type[RunSpec]:
    """The spec class for a record's kind, or a message that says which kinds exist."""
    if kind not in _kinds:
        _load_packages()
    if kind not in _kinds:
        raise InputError(
            f"Runs of kind {kind!r} cannot be replayed by this version of Steerscope; known kinds: {', '.join(sorted(_kinds))}."
        )
    return _kinds[kind]


def is_trusted_module(module_name: str) -> bool:
    """Whether ``module_name`` belongs to a package that may define record types."""
    return any(module_name == package or module_name.startswith(package + ".") for package in run_packages())
