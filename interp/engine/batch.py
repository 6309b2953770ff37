"""The rows decoding together: their KV cache, attention mask, positions and per-row additions.

Continuous batching in a few tensor moves. A request joining mid-decode is prefilled on its own (one forward pass
of its prompt, the cache then repeated for its samples) and merged into the running batch: both caches are
left-padded with masked zeros to the same length and concatenated along the batch. Each row carries its own
position (how many real tokens it has), passed as ``position_ids``, so RoPE (SmolLM2) and learned positions (GPT-2)
see exactly the positions the row would have alone; the mask hides the padding. A finished row leaves by
``index_select`` on every tensor, and columns that only padding still uses are cut off.

Per-row interventions: for every hook point any row adds to, one ``[rows, d_model]`` table of additions (zero for
rows that add nothing there) is added by a single hook, registered through :func:`interp.hooks.intervene` for
the one forward pass of a step — the hook context stays the only way anything touches the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from transformers import DynamicCache

from interp.engine.requests import GenerationStream
from interp.hooks import HookSite, intervene
from interp.lean import lean_model, lean_supports
from interp.loading import LoadedModel

Stage = Literal["prompt", "generated"]


@dataclasses.dataclass
class Row:
    """One sample of one request while it decodes."""

    stream: GenerationStream
    sample: int
    generator: torch.Generator | None
    token_ids: list[int] = dataclasses.field(default_factory=list)
    finish_reason: str | None = None


def additions_for(model: LoadedModel, rows: Sequence[Row], stage: Stage) -> list[tuple[str, Callable]]:
    """``(hook name, hook)`` pairs that add each row's own additions at ``stage`` (nothing for rows without)."""
    tables: dict[str, torch.Tensor] = {}
    for i, row in enumerate(rows):
        for addition in row.stream.request.additions:
            if not addition.applies_to(stage):
                continue
            table = tables.get(addition.hook_name)
            if table is None:
                table = tables[addition.hook_name] = torch.zeros(len(rows), addition.delta.shape[0])
            table[i] += addition.delta.float().cpu()
    return [(name, _row_adder(table.to(model.device))) for name, table in tables.items()]


def request_hooks(rows: Sequence[Row], positions: torch.Tensor, failures: dict[int, BaseException]) -> list[tuple[str, Callable]]:
    """Each request's own hook functions, called on its rows only; a hook that raises marks its request failed
    (in ``failures``, by stream id) and leaves the batch's activation as it was, so its neighbours go on."""
    out = []
    by_stream: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        if row.stream.request.hooks:
            by_stream.setdefault(id(row.stream), []).append(i)
    for indices in by_stream.values():
        stream = rows[indices[0]].stream
        index = torch.tensor(indices, dtype=torch.long)
        offset = int(positions[indices[0], 0])  # a request's rows share their position
        for name, fn in stream.request.hooks:
            out.append((name, _on_rows(fn, index, offset, id(stream), failures)))
    return out


def _on_rows(fn: Callable, index: torch.Tensor, offset: int, stream_id: int, failures: dict[int, BaseException]) -> Callable:
    def hook(activation: torch.Tensor, site: HookSite) -> torch.Tensor | None:
        if stream_id in failures:
            return None
        part = activation.index_select(0, index.to(activation.device))
        try:
            replaced = fn(part, HookSite(site.name, site.layer, offset))
        except Exception as error:  # this request's hook: its request fails, the batch goes on
            failures[stream_id] = error
            return None
        return activation.index_copy(0, index.to(activation.device), part if replaced is None else replaced)

    return hook


def _row_adder(table: torch.Tensor) -> Callable:
    def add(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
        # activation: [rows, pos, d_model]; table: [rows, d_model] -> [rows, 1, d_model]
        shape = (table.shape[0],) + (1,) * (activation.ndim - 2) + (table.shape[1],)
        return activation + table.view(shape).to(activation.dtype)

    return add


def forward(
    model: LoadedModel,
    rows: Sequence[Row],
    stage: Stage,
    tokens: torch.Tensor,
    cache: DynamicCache,
    mask: torch.Tensor,
    positions: torch.Tensor,
    failures: dict[int, BaseException] | None = None,
) -> torch.Tensor:
    """One forward pass of ``tokens`` ``[rows, n]`` at ``positions`` ``[rows, n]``; last-position logits ``[rows, vocab]``.

    Requests whose own hooks raised are named in ``failures`` (their rows' logits are not to be used)."""
    padded = bool((mask == 0).any())
    hooks = additions_for(model, rows, stage) + request_hooks(rows, positions, {} if failures is None else failures)
    lean = lean_supports(model, [name for name, _ in hooks])  # the plain HF modules where the hooks allow (interp.lean)
    with intervene(model, hooks, lean=lean), torch.inference_mode():
        inputs = {
            "past_key_values": cache,
            "attention_mask": mask.to(model.device) if padded else None,
            "position_ids": positions.to(model.device),
            "logits_to_keep": 1,
        }
        if lean:
            logits = lean_model(model)(input_ids=tokens.to(model.device), use_cache=True, **inputs).logits
        else:
            logits = model.bridge(tokens.to(model.device), **inputs)
    return logits[:, -1, :]


def merge_caches(
    model: LoadedModel, first: DynamicCache, first_mask: torch.Tensor, second: DynamicCache, second_mask: torch.Tensor
) -> tuple[DynamicCache, torch.Tensor]:
    """One cache holding ``first``'s rows then ``second``'s, left-padded (masked) to the longer of the two."""
    length = max(first_mask.shape[1], second_mask.shape[1])
    merged = DynamicCache(config=model.hf_model.config)
    for index, (a, b) in enumerate(zip(first.layers, second.layers, strict=True)):
        keys = torch.cat([_left_pad(a.keys, length), _left_pad(b.keys, length)], dim=0)
        values = torch.cat([_left_pad(a.values, length), _left_pad(b.values, length)], dim=0)
        merged.update(keys, values, index)
    mask = torch.cat([_left_pad(first_mask, length), _left_pad(second_mask, length)], dim=0)
    return merged, mask


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Zeros on the left of the sequence dimension (the last for masks, -2 for keys/values) up to ``length``."""
    seq_dim = tensor.ndim - 1 if tensor.ndim == 2 else tensor.ndim - 2
    missing = length - tensor.shape[seq_dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[seq_dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=seq_dim)


def keep_rows(cache: DynamicCache, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Drop the rows not in ``keep`` from ``cache`` (in place) and return their mask, cut of all-padding columns."""
    cache.batch_select_indices(keep)
    mask = mask.index_select(0, keep)
    used = mask.any(dim=0).nonzero()
    first = int(used[0]) if used.numel() else 0
    if first:
        for layer in cache.layers:
            layer.keys = layer.keys[..., first:, :]
            layer.values = layer.values[..., first:, :]
        mask = mask[:, first:]
    return mask
