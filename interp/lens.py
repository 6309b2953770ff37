"""The logit lens: read the residual stream after every layer as if it were the last.

nostalgebraist (2020) observed that decoding intermediate residual streams with the model's own
final norm and unembedding shows the prediction taking shape layer by layer. Row 0 is the
embedding (before any block); row ``l + 1`` is the stream after block ``l``; the last row is
exactly the model's output. Early rows of models with untied or strongly rotated bases can
read as noise — the lens assumes every layer speaks the unembedding's language, which is only
approximately true (the tuned lens, Belrose et al. 2023, learns a per-layer correction).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from interp.activations import decode_residual, record
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_count, default_of
from interp.tokens import as_batch, check_length, single_token_id, token_label, token_labels, tokenize


@dataclasses.dataclass(frozen=True)
class LensResult:
    """Top-k decoded tokens per layer and position, and optionally one target token's fate.

    Attributes:
        layer_labels: "embed", then "L0" .. "L{n-1}" (the stream after each block).
        top_tokens / top_ids / top_probs: ``[layer_row, position, k]``.
        target_probs / target_ranks: ``[layer_row, position]`` for ``target`` (rank 1 = top), or None.
    """

    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    layer_labels: tuple[str, ...]
    top_tokens: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    target: str | None
    target_id: int | None
    target_probs: np.ndarray | None
    target_ranks: np.ndarray | None

    def to_frame(self):
        import pandas as pd

        rows = []
        for layer, label in enumerate(self.layer_labels):
            for pos, token in enumerate(self.tokens):
                row = {"layer": label, "position": pos, "token": token}
                for rank in range(self.top_tokens.shape[2]):
                    row[f"top{rank + 1}_token"] = self.top_tokens[layer, pos, rank]
                    row[f"top{rank + 1}_prob"] = float(self.top_probs[layer, pos, rank])
                if self.target_probs is not None:
                    row[f"target_prob ({self.target})"] = float(self.target_probs[layer, pos])
                    row["target_rank"] = int(self.target_ranks[layer, pos])  # type: ignore[index]
                rows.append(row)
        return pd.DataFrame(rows)


def residual_hook_names(model: LoadedModel) -> list[str]:
    """The stream before block 0, then after each block."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(model.info.n_layers)]


def logit_lens(
    model: LoadedModel,
    prompt: str,
    target: str | None = None,
    *,
    k: int = 5,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> LensResult:
    """Decode the residual stream after every layer, at every position.

    Args:
        target: A single token (e.g. " Paris") whose probability and rank to follow per layer.
        k: How many top tokens to keep per cell.
        progress: Called as ``progress(fraction, message)`` after the forward pass and after each layer is decoded
            (decoding every layer at every position is most of the work: a vocabulary-wide unembedding per cell).
    """
    report = progress or (lambda fraction, message: None)
    ids = tokenize(model, prompt)
    check_length(model, len(ids), limit=max_tokens)
    target_id = single_token_id(model, target) if target else None
    names = residual_hook_names(model)
    report(0.0, f"Recording the residual stream of {len(ids)} tokens")
    recording = record(model, as_batch(ids, model), names)
    residuals = recording.stack(names)[:, 0]  # [layer_row, pos, d_model]
    top_values, top_indices, target_rows, rank_rows = [], [], [], []
    for row in range(len(names)):  # one layer at a time: a [pos, d_vocab] block instead of [layers, pos, d_vocab]
        report((row + 1) / (len(names) + 1), f"Decoding layer row {row + 1} of {len(names)}")
        probs = torch.softmax(decode_residual(model, residuals[row]).float(), dim=-1)  # [pos, d_vocab]
        top = torch.topk(probs, k, dim=-1)
        top_values.append(top.values.cpu())
        top_indices.append(top.indices.cpu())
        if target_id is not None:
            target_rows.append(probs[..., target_id].cpu())
            rank_rows.append((probs > probs[..., target_id : target_id + 1]).sum(dim=-1).add(1).cpu())
    top_ids = torch.stack(top_indices).numpy()
    labels = np.vectorize(lambda i: token_label(model.tokenizer, int(i)), otypes=[object])(top_ids)
    target_probs = torch.stack(target_rows).numpy() if target_id is not None else None
    target_ranks = torch.stack(rank_rows).numpy() if target_id is not None else None
    report(1.0, "Done")
    return LensResult(
        tokens=tuple(token_labels(model, ids)),
        token_ids=tuple(ids),
        layer_labels=("embed", *(f"L{layer}" for layer in range(model.info.n_layers))),
        top_tokens=labels,
        top_ids=top_ids,
        top_probs=torch.stack(top_values).numpy(),
        target=target,
        target_id=target_id,
        target_probs=target_probs,
        target_ranks=target_ranks,
    )


@dataclasses.dataclass(frozen=True)
class LogitLensRun(RunSpec):
    """The logit lens on one prompt, optionally following one target token."""

    kind: ClassVar[str] = "logit_lens"
    title: ClassVar[str] = "Logit lens"
    mirrors = (logit_lens,)

    prompt: str
    target: str | None = default_of(logit_lens, "target")
    k: int = default_of(logit_lens, "k")
    max_tokens: int | None = default_of(logit_lens, "max_tokens")

    def __post_init__(self) -> None:
        check_count("number of top tokens per cell", self.k, high=50)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> LensResult:
        return logit_lens(model, self.prompt, self.target or None, k=self.k, max_tokens=self.max_tokens, progress=progress)
