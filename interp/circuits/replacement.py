"""Running the model with some activations overwritten: what patching and ablation share.

A sweep is batched: row ``r`` of a forward pass overwrites site ``r // batch`` for prompt ``r % batch``,
so one pass tries many sites. Every run goes through :func:`interp.hooks.intervene`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from interp.activations import record
from interp.circuits.metric import Metric
from interp.components import Component
from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel


def run_metric(model: LoadedModel, tokens: torch.Tensor, metric: Metric, hooks=None) -> float:
    """The metric of one run of ``tokens`` (averaged over its prompts), with ``hooks`` in place."""
    with intervene(model, hooks), torch.inference_mode():
        return float(metric(model.bridge(tokens.to(model.device), logits_to_keep=metric.logits_to_keep()))[0])


def replacement_hooks(sites_per_row: Sequence[Component], sources: dict[str, torch.Tensor], batch: int):
    """Hooks that, for chunk row ``r``, overwrite site ``sites_per_row[r // batch]`` with its source value.

    ``sources[hook_name]`` is ``[batch, pos, ...]``: the value to write for each prompt.
    """
    by_hook: dict[str, list[tuple[int, Component]]] = defaultdict(list)
    for row, site in enumerate(sites_per_row):
        by_hook[site.hook_name].append((row, site))

    def make(assignments: list[tuple[int, Component]], source: torch.Tensor) -> Callable:
        def replace(activation: torch.Tensor, hook: HookSite) -> torch.Tensor:
            activation = activation.clone()
            for row, site in assignments:
                rows = slice(row * batch, (row + 1) * batch)
                index = site.select(activation)[1:]
                activation[(rows, *index)] = source[(slice(None), *index)].to(activation.dtype)
            return activation

        return replace

    return [(name, make(assignments, sources[name])) for name, assignments in by_hook.items()]


def sweep_rows(
    model: LoadedModel,
    base: torch.Tensor,
    sites: Sequence[Component],
    sources: dict[str, torch.Tensor],
    metric: Metric,
    *,
    batch_size: int,
    progress: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """The metric with each site of ``sites`` overwritten alone by its ``sources`` value: ``[len(sites)]``."""
    prompts = base.shape[0]
    per_chunk = max(1, batch_size // prompts)
    values = []
    for begin in range(0, len(sites), per_chunk):
        chunk = sites[begin : begin + per_chunk]
        tokens = base.repeat(len(chunk), 1).to(model.device)
        with intervene(model, replacement_hooks(chunk, sources, prompts)), torch.inference_mode():
            values.append(metric(model.bridge(tokens, logits_to_keep=metric.logits_to_keep())).cpu())
        if progress is not None:
            progress(min(1.0, (begin + len(chunk)) / len(sites)))
    return torch.cat(values)


def record_sites(model: LoadedModel, tokens: torch.Tensor, hook_names: Sequence[str]) -> dict[str, torch.Tensor]:
    return record(model, tokens, sorted(set(hook_names))).activations


def check_pair(clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise InputError(
            f"The clean and corrupted prompts must have the same number of tokens (got {clean.shape[-1]} and "
            f"{corrupted.shape[-1]}), so activations line up position by position. Align them first."
        )
