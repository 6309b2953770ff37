"""Session-independent caches of core results (detached, on CPU) so reruns don't recompute.

Results are keyed by the model's weights hash and the spec's digest, so a rerun with the same settings
on the same weights is a lookup, whichever session asks.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st
import torch

from interp import LoadedModel
from interp.hooks import running
from interp.runs import Progress, RunSpec
from ui.waiting import shown_while_waiting

DISPLAY_LIMIT = 256  # tokens: beyond this a pattern view is too dense to read and slow to draw


class RunCache:
    """Results of specs, shared by every session of this server, least recently used dropped first.

    Not ``st.cache_data``: that replays the Streamlit calls a cached function made, so a progress bar
    created outside and updated inside breaks on the next hit; and it would pickle every result. A
    result here is shared as-is (results are frozen dataclasses; pages treat them as read-only). Two
    sessions asking for the same spec at once compute it once: the second waits for the first.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 2 * 2**30) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # attention patterns of a long prompt are ~70 MB each: bound memory, not count
        self._results: collections.OrderedDict[tuple[str, str, str], Any] = collections.OrderedDict()
        self._sizes: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str, str], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._results:
                    return self._results[key]
            result = compute()  # an exception leaves nothing cached: the next rerun tries again
            self.put(key, result)
        return result

    def put(self, key: tuple[str, str, str], result: Any) -> None:
        """Keep ``result`` for ``key`` (a run computed elsewhere, e.g. streamed), dropping the least recent beyond the bounds."""
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            self._sizes[key] = array_bytes(result)
            self._computing.pop(key, None)
            while len(self._results) > 1 and (
                len(self._results) > self.max_entries or sum(self._sizes.values()) > self.max_bytes
            ):
                dropped, _ = self._results.popitem(last=False)
                self._sizes.pop(dropped, None)

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        with self._lock:
            return key in self._results

    def clear(self) -> None:
        with self._lock:
            self._results.clear()
            self._sizes.clear()


def array_bytes(value: Any, depth: int = 0) -> int:
    """Roughly how much memory a result's arrays take (what the cache bounds)."""
    if depth > 8:
        return 0
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(array_bytes(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(array_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(array_bytes(v, depth + 1) for v in value[:10_000])
    return 0


@st.cache_resource(show_spinner=False)
def run_cache() -> RunCache:
    return RunCache()


def cached_run(model: LoadedModel, spec: RunSpec, progress: Progress | None = None) -> Any:
    """``spec.run(model)``, computed once per (weights, spec) for every session: a rerun that changes no setting
    costs a cache lookup. ``progress`` is called only when the run really happens."""
    key = (_weights_key(model), spec.kind, spec.digest())

    def compute() -> Any:
        with running(spec.title or spec.kind), shown_while_waiting():  # a wait for the shared model is said, with for what
            return spec.run(model, progress)

    return run_cache().get(key, compute)


def store_run(model: LoadedModel, spec: RunSpec, result: Any) -> None:
    """Keep ``result`` as ``spec``'s on ``model`` (it was computed another way, e.g. streamed from the engine)."""
    run_cache().put((_weights_key(model), spec.kind, spec.digest()), result)


def is_cached(model: LoadedModel, spec: RunSpec) -> bool:
    """Whether ``cached_run(model, spec)`` would answer at once."""
    return (_weights_key(model), spec.kind, spec.digest()) in run_cache()


def _weights_key(model: LoadedModel) -> str:
    """The weights and the dtype they compute in: fast mode's bf16 copy has the same weights but other results."""
    return f"{model.info.weights_sha256}/{model.info.dtype}"


# ---------------------------------------------------------------------------------------------
# Steering (pages/steering.py)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_steering_vector(
    _model: LoadedModel, weights: str, source: str, key: tuple, _pairs: Any, method: str, position: str, layers: tuple[int, ...]
) -> Any:
    """A steering vector at ``layers`` made from one prompt pair (``source`` "actadd", ``key`` the pair) or from
    contrast pairs (``key`` names them: a dataset name or the pairs' texts)."""
    from steering.make import actadd, mean_difference, pca_direction

    if source == "actadd":
        return actadd(_model, key[0], key[1], layers)
    maker = mean_difference if method == "mean_difference" else pca_direction
    return maker(_model, _pairs, layers, position=position)
