"""The one hook context through which every intervention in Steerscope runs.

PyTorch hooks are global state on a module, and the app shares one model between every browser
session and thread. A hook left behind, or added by one session while another session's forward
pass runs, silently corrupts somebody else's result. So nothing in the project registers a hook
except :func:`intervene`, which

* resolves hook points by their TransformerLens names (``blocks.6.hook_resid_pre``,
  ``blocks.3.attn.hook_z``, ``blocks.0.attn.hook_pattern``); an unknown name raises
  :class:`~interp.errors.HookError` listing the closest real names, never a silent no-op;
* holds the model's lock for the whole intervened run, so no other thread's forward pass can
  see the hooks (plain runs take the same lock through ``intervene(model)`` with no hooks);
* registers each PyTorch handle into a list *before* doing anything else that could fail, and
  removes exactly those handles in ``finally`` — after an exception in a hook, a failure half-way
  through registration, or ``KeyboardInterrupt`` — then checks that none of them remains;
* counts how often each hook fired, so callers and tests can prove an intervention happened;
* says who holds the lock: a caller names what it runs with :func:`running` (the app uses the spec's
  title), :func:`model_busy` tells anyone what holds the model and since when, and a caller that
  waits more than :data:`WAIT_NOTICE_SECONDS` hears about it through :func:`on_wait` (the app shows
  "Waiting for another session's steering sweep to finish" instead of a silent spinner).

Hook functions use the TransformerLens signature ``fn(activation, hook)`` and may return a
replacement activation. ``activation`` has TransformerLens's layout (``hook_z`` is
``[batch, pos, head_index, d_head]``, ``hook_pattern`` is ``[batch, head_index, query_pos,
key_pos]``); ``hook`` is a :class:`HookSite` carrying the name and the absolute token positions
the activation covers (which differ from ``range(pos)`` during cached generation).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from interp.errors import HookError
from interp.lean import lean_hook_target
from interp.loading import LoadedModel

HookFn = Callable[[torch.Tensor, "HookSite"], torch.Tensor | None]
HookSpec = Mapping[str, HookFn] | Sequence[tuple[str, HookFn]]


@dataclasses.dataclass(frozen=True)
class HookSite:
    """Where a hook fired: its TransformerLens name and the absolute positions of this pass."""

    name: str
    layer: int | None
    position_offset: int

    def positions(self, length: int) -> range:
        """Absolute token positions of an activation with ``length`` positions."""
        return range(self.position_offset, self.position_offset + length)


@dataclasses.dataclass
class HookRun:
    """What an intervention did: how many times each named hook fired."""

    fire_counts: Counter[str] = dataclasses.field(default_factory=Counter)

    def fired(self, name: str) -> int:
        return self.fire_counts[name]


# ---------------------------------------------------------------------------------------------
# Who holds the model's lock, and telling a waiting caller

WAIT_NOTICE_SECONDS = 0.3  # a wait shorter than this is not worth a message
WAIT_UPDATE_SECONDS = 1.0  # how often a waiting caller hears again (the "started N s ago" moves on)


@dataclasses.dataclass(frozen=True)
class LockHolder:
    """What holds a model's lock: the run's description (see :func:`running`), when it started, which thread."""

    description: str
    started: float  # time.monotonic() when the run began (not when it last took the lock)
    thread: int

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


WaitCallback = Callable[[LockHolder | None], None]  # the holder while waiting (about once a second); None when done
_activity: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar("steerscope_activity", default=None)
_wait_callback: contextvars.ContextVar[WaitCallback | None] = contextvars.ContextVar("steerscope_on_wait", default=None)
_holders: dict[int, tuple[LockHolder, int]] = {}  # id(model.lock) -> (holder, nesting depth); entries leave on release
_holders_lock = threading.Lock()


@contextlib.contextmanager
def running(description: str) -> Iterator[None]:
    """Name what this thread runs (e.g. "Steering sweep"), for whoever waits for the model meanwhile.

    Nested calls keep the outer name and start time: the run is what a waiting user wants to hear about.
    """
    token = _activity.set(_activity.get() or (description, time.monotonic()))
    try:
        yield
    finally:
        _activity.reset(token)


@contextlib.contextmanager
def on_wait(callback: WaitCallback) -> Iterator[None]:
    """Call ``callback(holder)`` while this thread waits over :data:`WAIT_NOTICE_SECONDS` for a model's lock,
    then ``callback(None)`` once it has the lock."""
    token = _wait_callback.set(callback)
    try:
        yield
    finally:
        _wait_callback.reset(token)


def current_activity() -> str | None:
    """What this thread said it runs (see :func:`running`), if anything."""
    activity = _activity.get()
    return activity[0] if activity is not None else None


def holds_model(model: LoadedModel) -> bool:
    """Whether this thread holds ``model``'s lock now (it is inside :func:`intervene`)."""
    with _holders_lock:
        entry = _holders.get(id(model.lock))
    return entry is not None and entry[0].thread == threading.get_ident()


def model_busy(model: LoadedModel) -> LockHolder | None:
    """What holds ``model``'s lock now (None when it is free, or held by something that did not say)."""
    with _holders_lock:
        entry = _holders.get(id(model.lock))
    return entry[0] if entry is not None else None


@contextlib.contextmanager
def _holding(model: LoadedModel) -> Iterator[None]:
    """Take ``model.lock`` (telling a waiting caller who holds it) and record this thread as its holder."""
    lock = model.lock
    callback = None
    if not lock.acquire(timeout=WAIT_NOTICE_SECONDS):
        callback = _wait_callback.get()
        unnamed = LockHolder("run", time.monotonic(), 0)  # held by a caller that did not say what it runs
        if callback is not None:
            callback(model_busy(model) or unnamed)
        while not lock.acquire(timeout=WAIT_UPDATE_SECONDS):
            if callback is not None:
                callback(model_busy(model) or unnamed)
    try:
        if callback is not None:
            callback(None)
        activity = _activity.get() or ("run", time.monotonic())
        with _holders_lock:
            holder, depth = _holders.get(id(lock), (LockHolder(activity[0], activity[1], threading.get_ident()), 0))
            _holders[id(lock)] = (holder, depth + 1)
        try:
            yield
        finally:
            with _holders_lock:
                holder, depth = _holders[id(lock)]
                if depth > 1:
                    _holders[id(lock)] = (holder, depth - 1)
                else:
                    del _holders[id(lock)]
    finally:
        lock.release()


def hook_point_names(model: LoadedModel) -> list[str]:
    """Every hook point name the model offers, TransformerLens aliases included."""
    return sorted(model.bridge.hook_dict)


def resolve_hook_point(model: LoadedModel, name: str) -> Any:
    """The HookPoint module for a TransformerLens name, or a HookError with close matches."""
    hook_dict = model.bridge.hook_dict
    if name in hook_dict:
        return hook_dict[name]
    close = difflib.get_close_matches(name, list(hook_dict), n=5, cutoff=0.6)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise HookError(f"No hook point named '{name}' in {model.info.name}.{hint}")


def _layer_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def _pytorch_hook(model: LoadedModel, hook_point: Any, name: str, fn: HookFn, run: HookRun) -> Callable[..., Any]:
    """Wrap a TransformerLens-style hook as a PyTorch forward hook on a HookPoint.

    HookPoints are identity modules; TransformerLens bridges attach a ``hook_conversion`` that
    presents the activation in TransformerLens layout. We apply it (and revert the hook's
    replacement) exactly as ``HookPoint.add_hook`` does, but register the PyTorch handle
    ourselves so that we own it from the moment it exists.
    """
    layer = _layer_of(name)

    def forward_hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        run.fire_counts[name] += 1
        conversion = hook_point.hook_conversion
        activation = conversion.convert(output) if conversion is not None else output
        replaced = fn(activation, HookSite(name, layer, model.position_offset))
        if replaced is None:
            return None
        return conversion.revert(replaced) if conversion is not None else replaced

    return forward_hook


def _register_lean_hook(
    module: torch.nn.Module, how: str, fn: Callable[[torch.Tensor], torch.Tensor | None], n_heads: int
) -> Any:
    """A PyTorch hook on a lean-path module (:mod:`interp.lean`) that shows ``fn`` the activation in TransformerLens
    layout and applies its replacement. Only :func:`intervene` calls it, and removes the handle."""
    if how == "post":

        def post(_module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
            tensor = output[0] if isinstance(output, tuple) else output
            replaced = fn(tensor)
            if replaced is None:
                return None
            return (replaced, *output[1:]) if isinstance(output, tuple) else replaced

        return module.register_forward_hook(post)

    def pre(_module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        if how == "pre_z":  # [batch, pos, heads * d_head] -> [batch, pos, heads, d_head], as hook_z shows it
            batch, pos, width = hidden.shape
            replaced = fn(hidden.view(batch, pos, n_heads, width // n_heads))
            replaced = None if replaced is None else replaced.reshape(batch, pos, width)
        else:
            replaced = fn(hidden)
        if replaced is None:
            return None
        if "hidden_states" in kwargs:
            return args, {**kwargs, "hidden_states": replaced}
        return (replaced, *args[1:]), kwargs

    return module.register_forward_pre_hook(pre, with_kwargs=True)


def _lean_target(model: LoadedModel, name: str) -> tuple[torch.nn.Module, str]:
    try:
        return lean_hook_target(model, name)
    except KeyError:
        raise HookError(f"The lean decode path has no hook point named '{name}'; use the bridge for it.") from None


def _lean_call(model: LoadedModel, name: str, fn: HookFn, run: HookRun) -> Callable[[torch.Tensor], torch.Tensor | None]:
    layer = _layer_of(name)

    def call(activation: torch.Tensor) -> torch.Tensor | None:
        run.fire_counts[name] += 1
        return fn(activation, HookSite(name, layer, model.position_offset))

    return call


def _normalise(hooks: HookSpec | None) -> list[tuple[str, HookFn]]:
    if hooks is None:
        return []
    return list(hooks.items()) if isinstance(hooks, Mapping) else list(hooks)


@contextlib.contextmanager
def intervene(model: LoadedModel, hooks: HookSpec | None = None, *, lean: bool = False) -> Iterator[HookRun]:
    """Run the model with forward hooks, holding its lock; every hook is gone afterwards.

    Args:
        model: The loaded model (shared; never mutated beyond the hooks' lifetime).
        hooks: ``{name: fn}`` or a list of ``(name, fn)`` pairs (a name may repeat).
            None or empty runs the model plain, still under the lock.
        lean: Attach the hooks to the lean decode path (:mod:`interp.lean`, the plain Hugging Face modules over
            the same weights) instead of the bridge's hook points; only the names it maps are allowed.

    Yields:
        A :class:`HookRun` whose ``fire_counts`` grow as the hooks fire.

    Raises:
        HookError: an unknown hook point name (before anything is registered), or a hook that
            could not be removed.

    Example:
        >>> def double(act, hook):
        ...     return act * 2
        >>> with intervene(model, {"blocks.3.hook_resid_pre": double}) as run:
        ...     logits = model.bridge(tokens)
        >>> run.fired("blocks.3.hook_resid_pre")
        1
    """
    pairs = _normalise(hooks)
    if lean:
        points = [(name, _lean_target(model, name), fn) for name, fn in pairs]  # fail before registering
    else:
        points = [(name, resolve_hook_point(model, name), fn) for name, fn in pairs]
    run = HookRun()
    with _holding(model):
        handles: list[tuple[Any, torch.utils.hooks.RemovableHandle]] = []
        saved_offset = model.position_offset
        try:
            for name, target, fn in points:
                if lean:
                    module, how = target
                    handle = _register_lean_hook(module, how, _lean_call(model, name, fn, run), model.info.n_heads)
                    handles.append((module, handle))
                else:
                    handles.append((target, target.register_forward_hook(_pytorch_hook(model, target, name, fn, run))))
            with _in_model_dtype(model) if not lean else contextlib.nullcontext():  # plain HF modules keep their dtypes
                yield run
        finally:
            model.position_offset = saved_offset
            for _, handle in reversed(handles):
                handle.remove()
            leftover = [
                getattr(hp, "name", None) or type(hp).__name__
                for hp, handle in handles
                if handle.id in hp._forward_hooks or handle.id in hp._forward_pre_hooks
            ]
            if leftover:
                raise HookError(f"Hooks could not be removed from {', '.join(leftover)}; reload the model.")


def _in_model_dtype(model: LoadedModel) -> contextlib.AbstractContextManager:
    """A reduced-precision copy (interp.fast) computes in its own dtype: some bridge components hand back fp32
    (normalisation), which its bf16 weights would refuse; autocast casts those inputs, and is off for fp32 models."""
    low = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(model.info.dtype)
    return torch.autocast(model.device.type, dtype=low) if low is not None else contextlib.nullcontext()


def count_hooks(model: LoadedModel) -> int:
    """Hooks attached to the model's hook points (where interventions live; tests use it).

    The bridge itself keeps a few internal pre-hooks on its normalisation modules, added on the
    first forward pass; those are the library's, not interventions, so they are not counted.
    """
    from transformer_lens.hook_points import HookPoint

    bridge = sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
        for module in model.bridge.modules()
        if isinstance(module, HookPoint)
    )
    lean = getattr(model, "_lean", None)  # the lean decode path's modules, once built (interp.lean)
    if lean:
        bridge += sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lean.modules())
    return bridge
