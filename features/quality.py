"""How good an SAE is, measured on text it was not trained on: the figures shown with every SAE.

* **FVU**, the fraction of variance unexplained: ``Σ‖x − x̂‖² / Σ‖x − x̄‖²`` over tokens (0 is perfect; 1 is no
  better than the mean activation).
* **L0**: latents active per token, on average (``k`` for a TopK SAE, whatever the data).
* **Dead fraction**: latents that never fire on the evaluation tokens (with few tokens a rare latent looks dead:
  the number of tokens is shown with it).
* **CE loss recovered**: the language model's next-token loss with the SAE's reconstruction spliced in at its hook
  point, against the clean loss and the loss with that activation zero-ablated:
  ``(L_zero − L_sae) / (L_zero − L_clean)``; 1 means splicing the SAE in costs nothing, 0 means it is as bad as
  deleting the activation. (The first position of each context, the attention sink, is neither spliced nor scored:
  see :mod:`features.activations`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from features.activations import SKIPPED_POSITIONS, TokenStream
from features.sae import SparseAutoencoder
from interp.hooks import HookSite, intervene
from interp.lean import lean_model, lean_supports
from interp.loading import LoadedModel


@dataclasses.dataclass(frozen=True)
class SAEQuality:
    """One SAE's figures on ``n_tokens`` evaluation tokens."""

    fvu: float
    l0: float
    dead_fraction: float
    clean_loss: float  # nats per token
    spliced_loss: float
    zero_ablated_loss: float
    n_tokens: int
    firing_counts: torch.Tensor  # [d_sae]: tokens on which each latent fired

    @property
    def ce_loss_recovered(self) -> float:
        return (self.zero_ablated_loss - self.spliced_loss) / (self.zero_ablated_loss - self.clean_loss)

    def describe(self) -> str:
        return (
            f"FVU {self.fvu:.3f}, L0 {self.l0:.1f}, {100 * self.dead_fraction:.1f}% dead, CE loss recovered "
            f"{100 * self.ce_loss_recovered:.1f}% (clean {self.clean_loss:.3f}, with the SAE {self.spliced_loss:.3f}, "
            f"zero-ablated {self.zero_ablated_loss:.3f} nats/token; {self.n_tokens:,} tokens)"
        )


def splice_hook(sae: SparseAutoencoder) -> Callable[[torch.Tensor, HookSite], torch.Tensor]:
    """A hook that replaces the activation with the SAE's reconstruction (the attention sink left as it was)."""

    def splice(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
        replaced = activation.clone()
        start = max(0, SKIPPED_POSITIONS - site.position_offset)
        replaced[:, start:] = sae.reconstruct(activation[:, start:]).to(activation.dtype)
        return replaced

    return splice


def _zero_hook(activation: torch.Tensor, site: HookSite) -> torch.Tensor:
    replaced = activation.clone()
    replaced[:, max(0, SKIPPED_POSITIONS - site.position_offset) :] = 0
    return replaced


def _losses(model: LoadedModel, token_ids: torch.Tensor, hooks) -> torch.Tensor:
    """Summed next-token loss over the scored positions, ``[]``."""
    lean = lean_supports(model, [name for name, _ in hooks] or ["blocks.0.hook_resid_pre"])
    with intervene(model, hooks, lean=lean), torch.inference_mode():
        ids = token_ids.to(model.device)
        logits = lean_model(model)(ids, use_cache=False).logits if lean else model.bridge(ids)
    # predictions from the positions after the sink, for the token that follows each
    predicted = logits[:, SKIPPED_POSITIONS:-1].float()
    targets = ids[:, SKIPPED_POSITIONS + 1 :]
    return torch.nn.functional.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1), reduction="sum")


def sae_quality(
    model: LoadedModel,
    sae: SparseAutoencoder,
    stream: TokenStream,
    *,
    batch_contexts: int = 8,
    progress: Callable[[float, str], None] | None = None,
) -> SAEQuality:
    """FVU, L0, dead fraction and CE loss recovered of ``sae`` on every context of ``stream``."""
    from features.activations import hook_activations

    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    squared_error, n, sum_x, sum_x2, active = 0.0, 0, 0.0, 0.0, 0.0
    firing = torch.zeros(sae.d_sae, dtype=torch.long)
    contexts = stream.contexts
    for first in range(0, contexts.shape[0], batch_contexts):
        batch = contexts[first : first + batch_contexts]
        x = hook_activations(model, batch, sae.hook_name)[:, SKIPPED_POSITIONS:].reshape(-1, sae.d_in)
        code = sae.encode(x)
        squared_error += float((sae.decode(code) - x).pow(2).sum())
        sum_x = sum_x + x.sum(dim=0).double()
        sum_x2 += float(x.double().pow(2).sum())
        n += x.shape[0]
        on = code > 0
        active += float(on.sum())
        firing += on.sum(dim=0)
        totals["clean"] += float(_losses(model, batch, []))
        totals["sae"] += float(_losses(model, batch, [(sae.hook_name, splice_hook(sae))]))
        totals["zero"] += float(_losses(model, batch, [(sae.hook_name, _zero_hook)]))
        if progress is not None:
            done = min(first + batch_contexts, contexts.shape[0])
            progress(done / contexts.shape[0], f"Evaluating the SAE: {done} of {contexts.shape[0]} contexts")
    total_variance = sum_x2 - float((sum_x * sum_x).sum()) / n  # Σ‖x‖² − n‖x̄‖²
    n_scored = contexts.shape[0] * (contexts.shape[1] - SKIPPED_POSITIONS - 1)
    return SAEQuality(
        fvu=squared_error / total_variance,
        l0=active / n,
        dead_fraction=float((firing == 0).float().mean()),
        clean_loss=totals["clean"] / n_scored,
        spliced_loss=totals["sae"] / n_scored,
        zero_ablated_loss=totals["zero"] / n_scored,
        n_tokens=n,
        firing_counts=firing,
    )
