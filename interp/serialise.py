"""Results to JSON and safetensors and back, without pickle.

Every run spec and result in Steerscope is a dataclass of numbers, strings, tuples, dicts, numpy arrays and
torch tensors. :func:`to_json` walks one and returns a JSON document plus a dict of arrays (saved
as safetensors); :func:`from_json` rebuilds it. Types are recorded by name and rebuilt only if
they are dataclasses defined in a package declared as a run package (the core and the
``steerscope.runs`` entry points, see :mod:`interp.runs.registry`) — a record cannot make us import
or run anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.errors import InputError


def to_json(value: Any) -> tuple[dict, dict[str, torch.Tensor]]:
    """A JSON-able document and the arrays it refers to (``{"__array__": key}``)."""
    arrays: dict[str, torch.Tensor] = {}

    def walk(item: Any) -> Any:
        if item is None or isinstance(item, bool | int | str):
            return item
        if isinstance(item, float):
            return item if np.isfinite(item) else {"__float__": repr(item)}
        if isinstance(item, np.generic):
            return walk(item.item())
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                return {"__objects__": [walk(x) for x in item.ravel().tolist()], "shape": list(item.shape)}
            key = f"a{len(arrays)}"
            arrays[key] = torch.from_numpy(np.ascontiguousarray(item))
            return {"__array__": key, "kind": "numpy"}
        if isinstance(item, torch.Tensor):
            key = f"a{len(arrays)}"
            arrays[key] = item.detach().cpu().contiguous()
            return {"__array__": key, "kind": "torch"}
        if isinstance(item, Path):
            return {"__path__": str(item)}
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = {
                f.name: walk(getattr(item, f.name)) for f in dataclasses.fields(item) if not callable(getattr(item, f.name))
            }
            return {"__type__": f"{type(item).__module__}.{type(item).__qualname__}", **fields}
        if isinstance(item, tuple):
            return {"__tuple__": [walk(x) for x in item]}
        if isinstance(item, list):
            return [walk(x) for x in item]
        if isinstance(item, dict):
            if all(isinstance(k, str) for k in item):
                return {"__dict__": {k: walk(v) for k, v in item.items()}}
            return {"__pairs__": [[walk(k), walk(v)] for k, v in item.items()]}
        if callable(item):
            return None  # functions (e.g. a scalar attribution target) are not data
        raise InputError(f"Cannot record a value of type {type(item).__name__}.")

    return walk(value), arrays


def from_json(document: Any, arrays: dict[str, torch.Tensor]) -> Any:
    """Rebuild what :func:`to_json` wrote."""

    def walk(item: Any) -> Any:
        if isinstance(item, list):
            return [walk(x) for x in item]
        if not isinstance(item, dict):
            return item
        if "__array__" in item:
            tensor = arrays[item["__array__"]]
            return tensor.numpy() if item.get("kind") == "numpy" else tensor
        if "__float__" in item:
            return float(item["__float__"])
        if "__objects__" in item:
            return np.array([walk(x) for x in item["__objects__"]], dtype=object).reshape(item["shape"])
        if "__path__" in item:
            return Path(item["__path__"])
        if "__tuple__" in item:
            return tuple(walk(x) for x in item["__tuple__"])
        if "__dict__" in item:
            return {k: walk(v) for k, v in item["__dict__"].items()}
        if "__pairs__" in item:
            return {_hashable(walk(k)): walk(v) for k, v in item["__pairs__"]}
        if "__type__" in item:
            cls = _allowed_type(item["__type__"])
            names = {f.name for f in dataclasses.fields(cls)}
            values = {k: walk(v) for k, v in item.items() if k in names}
            return cls(**values)
        return {k: walk(v) for k, v in item.items()}

    return walk(document)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _allowed_type(name: str) -> type:
    from interp.runs.registry import is_trusted_module

    module_name, _, qualname = name.rpartition(".")
    if not is_trusted_module(module_name):
        raise InputError(f"The record names type {name}, which is not a Steerscope result; it was not loaded.")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError):
        raise InputError(f"The record names type {name}, which this version of Steerscope does not have.") from None
    if not dataclasses.is_dataclass(cls):
        raise InputError(f"The record names {name}, which is not a result type.")
    return cls


def dumps(value: Any) -> tuple[str, bytes]:
    """JSON text and safetensors bytes for a result."""
    from safetensors.torch import save

    document, arrays = to_json(value)
    return json.dumps(document, indent=1, allow_nan=False), save(arrays) if arrays else b""


def loads(text: str, blob: bytes) -> Any:
    from safetensors.torch import load

    try:
        document = json.loads(text)
        arrays = load(blob) if blob else {}
    except (ValueError, RuntimeError) as exc:  # safetensors raises its own errors for corrupt data
        raise InputError(f"The record is damaged and cannot be read ({exc}).") from None
    return from_json(document, arrays)
