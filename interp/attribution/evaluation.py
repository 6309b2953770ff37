"""Running perturbed prompts through the model in batches, and counting what that costs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp.attribution.targets import ResolvedTarget
from interp.hooks import HookSite, intervene
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, pad_rows


class Evaluator:
    """Runs rows of token ids through the model in batches and counts the evaluations.

    Two savings keep attribution close to plain batched-forward throughput: the unembedding is
    applied only at the positions the target reads (``logits_to_keep``; it is a fifth of
    SmolLM2's compute per position), and the target's value on the unchanged prompt is remembered
    from whichever method call evaluates it, instead of being run again.
    """

    def __init__(self, model: LoadedModel, resolved: ResolvedTarget, batch_size: int) -> None:
        self.model = model
        self.resolved = resolved
        self.batch_size = batch_size
        self.evaluations = 0
        self.pad_id = baseline_token_id(model)
        self.unchanged_value: float | None = None

    def _remember(self, rows: Sequence[Sequence[int]], values: torch.Tensor) -> None:
        if self.unchanged_value is None:
            for row, value in zip(rows, values, strict=True):
                if tuple(row) == self.resolved.prompt_ids:
                    self.unchanged_value = float(value)
                    return

    def prompt_tensor(self) -> torch.Tensor:
        """The prompt's ids as one row ``[1, n]`` on the model's device."""
        return torch.tensor([self.resolved.prompt_ids], dtype=torch.long, device=self.model.device)

    def equal_length(self, input_ids: torch.Tensor, *, remember: bool = True) -> torch.Tensor:
        """Target per row for prompt rows of equal length (Captum's calling convention).

        Differentiable: gradient methods call it with grad enabled. ``remember=False`` when the ids
        are not what the model reads (their embeddings are replaced), so no row counts as the prompt.
        """
        rows = input_ids.shape[0]
        suffix = torch.tensor(self.resolved.suffix_ids, dtype=torch.long, device=input_ids.device)
        full = torch.cat([input_ids, suffix.expand(rows, -1)], dim=1) if len(suffix) else input_ids
        self.evaluations += rows
        if self.resolved.function is not None:
            values = self.resolved.function(full.to(self.model.device))
        else:
            logits = self.model.bridge(full.to(self.model.device), logits_to_keep=self.resolved.positions_needed)
            values = self.resolved.score(logits)
        if remember:
            self._remember(input_ids.tolist(), values.detach())
        return values

    def token_embeddings(self, ids: Sequence[int]) -> torch.Tensor:
        """The embedding layer's output for ``ids``: ``[1, len(ids), d_model]`` (constants for Captum)."""
        with torch.no_grad():
            return self.model.bridge.embed(torch.tensor([list(ids)], device=self.model.device)).detach()

    def from_token_embeddings(self, token_embeddings: torch.Tensor) -> torch.Tensor:
        """Target per row when the prompt's token embeddings ``[rows, n, d_model]`` are given.

        Captum's gradient methods perturb embeddings, not ids. They enter the model through the one hook
        context (the embedding layer's output is replaced at the prompt's positions), so no library
        registers hooks of its own on the shared model.
        """
        rows, n = token_embeddings.shape[:2]

        def replace(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
            return torch.cat([token_embeddings.to(activation.dtype), activation[:, n:]], dim=1)

        ids = torch.tensor([list(self.resolved.prompt_ids)], dtype=torch.long).expand(rows, -1)
        with intervene(self.model, {"hook_embed": replace}):
            return self.equal_length(ids, remember=False)

    def rows(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Target per row for prompts of any lengths: left-padded batches with a mask, no gradients."""
        values = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            if self.resolved.function is not None:  # scalar targets see equal-length rows only
                with torch.inference_mode():
                    scored = (
                        self.resolved.function(torch.tensor([list(p) for p in chunk], device=self.model.device)).float().cpu()
                    )
                self._remember(chunk, scored)
                values.append(scored.numpy())
                self.evaluations += len(chunk)
                continue
            full = [list(p) + list(self.resolved.suffix_ids) for p in chunk]
            # Left padding puts every row's last tokens in the same columns, so one
            # logits_to_keep serves the whole batch; the bridge derives positions from the mask.
            padded = pad_rows(full, self.pad_id, side="left")
            batch, mask = padded.tokens, padded.mask
            with torch.inference_mode():
                logits = self.model.bridge(
                    batch.to(self.model.device),
                    attention_mask=mask.to(self.model.device) if bool((mask == 0).any()) else None,
                    logits_to_keep=self.resolved.positions_needed,
                )
                scored = self.resolved.score(logits).cpu()
            self._remember(chunk, scored)
            values.append(scored.numpy())
            self.evaluations += len(chunk)
        return np.concatenate(values).astype(np.float64)

    def unchanged(self) -> float:
        """The target on the unchanged prompt (evaluated only if no method call has already)."""
        if self.unchanged_value is None:
            self.rows([self.resolved.prompt_ids])
        assert self.unchanged_value is not None
        return self.unchanged_value
