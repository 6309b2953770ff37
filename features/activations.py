"""Residual-stream activations streamed for SAE training and evaluation, through the one hook context.

Text is tokenised once into a single stream (documents separated by the tokenizer's end-of-text token) and cut
into contexts of ``context_tokens``. Each batch of contexts runs on the lean decode path (:mod:`interp.lean`) only
as far as the SAE's layer: the hook that records the activation then stops the forward pass, so a layer-6 SAE
costs 7 of SmolLM2's 30 blocks per token.

The first position of every context is left out. With no BOS token (SmolLM2's tokenizer adds none), the first
token is the attention sink and its residual stream is tens of times larger than any other's; an SAE trained on
it spends its capacity there (Gao et al. and sparsify drop it for the same reason).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import torch

from interp.errors import InputError
from interp.hooks import HookSite, intervene
from interp.lean import lean_model, lean_supports
from interp.loading import LoadedModel

SKIPPED_POSITIONS = 1  # the attention sink


class _StopForward(Exception):
    """Raised by the recording hook: nothing after the SAE's layer needs computing."""


@dataclasses.dataclass(frozen=True)
class TokenStream:
    """A corpus as token ids cut into equal contexts: ``contexts`` is ``[n_contexts, context_tokens]``."""

    contexts: torch.Tensor
    source: str

    @property
    def n_tokens(self) -> int:
        """Tokens an SAE trains on (the skipped first positions not counted)."""
        return self.contexts.shape[0] * (self.contexts.shape[1] - SKIPPED_POSITIONS)


def token_stream(model: LoadedModel, documents: Sequence[str], *, context_tokens: int = 128, source: str = "") -> TokenStream:
    """Tokenise ``documents`` into one stream and cut it into ``context_tokens``-long contexts (the tail dropped)."""
    if context_tokens < 2:
        raise InputError("A context needs at least 2 tokens (the first position is not trained on).")
    tokenizer = model.tokenizer
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for document in documents:
        ids.extend(tokenizer(document, add_special_tokens=False).input_ids)
        ids.extend(separator)
    n = len(ids) // context_tokens
    if n == 0:
        raise InputError(f"The training text is {len(ids)} tokens, less than one context of {context_tokens}; give more text.")
    contexts = torch.tensor(ids[: n * context_tokens], dtype=torch.long).view(n, context_tokens)
    return TokenStream(contexts, source)


def hook_activations(model: LoadedModel, token_ids: torch.Tensor, hook_name: str) -> torch.Tensor:
    """The activation at ``hook_name`` for ``token_ids`` ``[batch, pos]`` → ``[batch, pos, d_model]`` (fp32, CPU),
    computing no block after the hook's."""
    captured: list[torch.Tensor] = []

    def keep_and_stop(activation: torch.Tensor, site: HookSite) -> None:
        captured.append(activation.detach().float().cpu())
        raise _StopForward

    lean = lean_supports(model, [hook_name])
    with intervene(model, [(hook_name, keep_and_stop)], lean=lean), torch.inference_mode():
        try:
            if lean:
                lean_model(model)(token_ids.to(model.device), use_cache=False)
            else:
                model.bridge(token_ids.to(model.device))
        except _StopForward:
            pass
    if not captured:
        raise InputError(f"The hook point {hook_name} did not fire; the model has no such activation.")
    return captured[0]


def stream_activations(
    model: LoadedModel, stream: TokenStream, hook_name: str, *, batch_contexts: int = 16, start_context: int = 0
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(next_context, activations [batch·(pos−1), d_model])`` per batch of contexts, from ``start_context`` on
    (a resumed training passes where it stopped)."""
    for first in range(start_context, stream.contexts.shape[0], batch_contexts):
        batch = stream.contexts[first : first + batch_contexts]
        acts = hook_activations(model, batch, hook_name)[:, SKIPPED_POSITIONS:]
        yield first + batch.shape[0], acts.reshape(-1, acts.shape[-1])
