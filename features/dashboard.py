"""What a feature means: its top-activating contexts, how often and how strongly it fires, and the tokens it writes.

A :class:`FeatureIndex` is one pass over a text: for every latent the ``top_m`` strongest activations (with the
context and position of each), a histogram of its nonzero activations and how many tokens it fired on. It is built
once per SAE (minutes for a few hundred thousand tokens) and kept next to the SAE (``dashboards.safetensors``), so
a dashboard opens without running the model again.

Logit effects are the decoder direction read through the final norm's weight and the unembedding,
``(W_dec[i] ⊙ γ) @ W_Uᵀ``: the direct effect of the feature on each next-token logit, up to the positive per-token
RMS scale (which does not change the ranking). Features that act through later layers show little here.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from features.activations import SKIPPED_POSITIONS, TokenStream, hook_activations
from features.sae import SparseAutoencoder
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.tokens import check_length, token_label, tokenize

INDEX_FILE = "dashboards.safetensors"
HISTOGRAM_BINS = torch.logspace(-2, 3, 41)  # activation edges, 0.01 … 1000 (residual-stream units), log-spaced


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureIndex:
    """Per latent: its ``top_m`` activations over ``contexts`` and its activation statistics."""

    top_values: torch.Tensor  # [d_sae, m] descending; 0 where the latent fired fewer than m times
    top_contexts: torch.Tensor  # [d_sae, m] row of ``contexts``
    top_positions: torch.Tensor  # [d_sae, m] position in that context
    firing_counts: torch.Tensor  # [d_sae] tokens it fired on
    histogram: torch.Tensor  # [d_sae, bins]: nonzero activations per HISTOGRAM_BINS interval
    contexts: torch.Tensor  # [n_contexts, context_tokens] token ids
    n_tokens: int  # tokens indexed (first positions left out)

    def density(self, latent: int) -> float:
        """The fraction of indexed tokens the latent fires on."""
        return float(self.firing_counts[latent]) / self.n_tokens


def build_feature_index(
    model: LoadedModel,
    sae: SparseAutoencoder,
    stream: TokenStream,
    *,
    top_m: int = 12,
    batch_contexts: int = 16,
    progress: Callable[[float, str], None] | None = None,
) -> FeatureIndex:
    """One pass over ``stream``: each latent's strongest activations and its statistics."""
    n_contexts, length = stream.contexts.shape
    width = length - SKIPPED_POSITIONS
    top_values = torch.zeros(sae.d_sae, top_m)
    top_flat = torch.zeros(sae.d_sae, top_m, dtype=torch.long)  # context * width + (position - SKIPPED)
    firing = torch.zeros(sae.d_sae, dtype=torch.long)
    histogram = torch.zeros(sae.d_sae, len(HISTOGRAM_BINS) - 1, dtype=torch.long)
    for first in range(0, n_contexts, batch_contexts):
        batch = stream.contexts[first : first + batch_contexts]
        x = hook_activations(model, batch, sae.hook_name)[:, SKIPPED_POSITIONS:].reshape(-1, sae.d_in)
        code = sae.encode(x)  # [tokens, d_sae]
        on = code > 0
        firing += on.sum(dim=0)
        rows, latents = on.nonzero(as_tuple=True)
        bins = (torch.bucketize(code[rows, latents], HISTOGRAM_BINS) - 1).clamp(0, histogram.shape[1] - 1)
        histogram.view(-1).index_add_(0, latents * histogram.shape[1] + bins, torch.ones_like(bins))
        flat = torch.arange(first * width, first * width + x.shape[0])
        m = min(top_m, x.shape[0])
        values, where = code.topk(m, dim=0)  # [m, d_sae]
        merged_values = torch.cat([top_values, values.T], dim=1)
        merged_flat = torch.cat([top_flat, flat[where].T], dim=1)
        best = merged_values.topk(top_m, dim=1)
        top_values, top_flat = best.values, merged_flat.gather(1, best.indices)
        if progress is not None:
            done = min(first + batch_contexts, n_contexts)
            progress(done / n_contexts, f"Indexing features: {done} of {n_contexts} contexts")
    return FeatureIndex(
        top_values=top_values,
        top_contexts=top_flat // width,
        top_positions=top_flat % width + SKIPPED_POSITIONS,
        firing_counts=firing,
        histogram=histogram,
        contexts=stream.contexts.clone(),
        n_tokens=n_contexts * width,
    )


def save_index(index: FeatureIndex, folder: str | Path) -> Path:
    path = Path(folder) / INDEX_FILE
    tensors = {
        "top_values": index.top_values.half(),
        "top_contexts": index.top_contexts.int(),
        "top_positions": index.top_positions.short(),
        "firing_counts": index.firing_counts.int(),
        "histogram": index.histogram.int(),
        "contexts": index.contexts.int(),
        "n_tokens": torch.tensor([index.n_tokens], dtype=torch.long),
    }
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(path))
    return path


def load_index(folder: str | Path, sae: SparseAutoencoder) -> FeatureIndex | None:
    """The index kept beside an SAE, or None if there is none (it is then built on demand)."""
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        return None
    t = load_file(str(path))
    index = FeatureIndex(
        top_values=t["top_values"].float(),
        top_contexts=t["top_contexts"].long(),
        top_positions=t["top_positions"].long(),
        firing_counts=t["firing_counts"].long(),
        histogram=t["histogram"].long(),
        contexts=t["contexts"].long(),
        n_tokens=int(t["n_tokens"][0]),
    )
    if index.top_values.shape[0] != sae.d_sae:
        raise InputError(f"The feature index beside the SAE has {index.top_values.shape[0]} features, the SAE {sae.d_sae}.")
    return index


# -- one feature ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenEffect:
    token: str
    token_id: int
    logit: float  # direct effect on the next-token logit per unit of activation


@dataclasses.dataclass(frozen=True)
class ContextExample:
    """One top-activating context, cut to a window around the token it fired on most."""

    tokens: tuple[str, ...]
    activations: tuple[float, ...]  # the feature's activation on each token of the window
    highlight: int  # index in ``tokens`` of the top-activating token
    activation: float


@dataclasses.dataclass(frozen=True)
class FeatureDashboard:
    latent: int
    label: str  # from its top-activating tokens (the user may rename it)
    density: float  # fraction of indexed tokens it fires on
    examples: tuple[ContextExample, ...]
    histogram: tuple[int, ...]
    bin_edges: tuple[float, ...]
    promoted: tuple[TokenEffect, ...]
    suppressed: tuple[TokenEffect, ...]


def _readout(model: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The final norm's weight ``[d_model]`` and the unembedding ``[vocab, d_model]`` (fp32)."""
    norm = model.bridge.ln_final.original_component
    unembed = model.bridge.unembed.original_component
    gamma = getattr(norm, "weight", None)
    gamma = gamma.detach().float() if gamma is not None else torch.ones(model.info.d_model)
    return gamma.cpu(), unembed.weight.detach().float().cpu()


def logit_effects(
    model: LoadedModel, sae: SparseAutoencoder, latent: int, n: int = 10
) -> tuple[tuple[TokenEffect, ...], tuple[TokenEffect, ...]]:
    """The ``n`` tokens the feature's direction promotes most, and the ``n`` it suppresses most."""
    gamma, unembed = _readout(model)
    effect = unembed @ (sae.direction(latent) * gamma)  # [vocab]
    top, bottom = effect.topk(n), (-effect).topk(n)

    def effects(ids, values):
        return tuple(
            TokenEffect(token_label(model.tokenizer, int(i)), int(i), float(v)) for i, v in zip(ids, values, strict=True)
        )

    return effects(top.indices, top.values), effects(bottom.indices, -bottom.values)


def features_promoting(model: LoadedModel, sae: SparseAutoencoder, token_id: int, n: int = 10) -> tuple[tuple[int, float], ...]:
    """The features whose direction raises ``token_id``'s logit most: ``(latent, logit per unit activation)``."""
    gamma, unembed = _readout(model)
    if not 0 <= token_id < unembed.shape[0]:
        raise InputError(f"Token id {token_id} is not in the vocabulary (0 to {unembed.shape[0] - 1}).")
    scores = sae.decoder_weight @ (unembed[token_id] * gamma)  # [d_sae]
    top = scores.topk(min(n, sae.d_sae))
    return tuple((int(i), float(v)) for i, v in zip(top.indices, top.values, strict=True))


def feature_dashboard(
    model: LoadedModel, sae: SparseAutoencoder, index: FeatureIndex, latent: int, *, window: int = 12, n_examples: int = 8
) -> FeatureDashboard:
    """Everything the dashboard shows for ``latent``, from the index and the weights (no forward pass but one batch)."""
    sae.direction(latent)  # says so if the latent does not exist
    fired = [j for j in range(index.top_values.shape[1]) if float(index.top_values[latent, j]) > 0][:n_examples]
    examples: list[ContextExample] = []
    if fired:
        contexts = index.top_contexts[latent, fired]
        # the whole window's activations need one forward pass over those contexts
        acts = sae.encode(hook_activations(model, index.contexts[contexts], sae.hook_name))[..., latent]  # [n, pos]
        for row, j in enumerate(fired):
            position = int(index.top_positions[latent, j])
            start, end = max(SKIPPED_POSITIONS, position - window), min(index.contexts.shape[1], position + 4)
            ids = index.contexts[int(contexts[row]), start:end].tolist()
            examples.append(
                ContextExample(
                    tokens=tuple(token_label(model.tokenizer, i) for i in ids),
                    activations=tuple(float(a) for a in acts[row, start:end]),
                    highlight=position - start,
                    activation=float(index.top_values[latent, j]),
                )
            )
    promoted, suppressed = logit_effects(model, sae, latent)
    return FeatureDashboard(
        latent=latent,
        label=auto_label(examples),
        density=index.density(latent),
        examples=tuple(examples),
        histogram=tuple(int(c) for c in index.histogram[latent]),
        bin_edges=tuple(float(e) for e in HISTOGRAM_BINS),
        promoted=promoted,
        suppressed=suppressed,
    )


def auto_label(examples: tuple[ContextExample, ...] | list[ContextExample]) -> str:
    """A first name for a feature: its most frequent top-activating tokens (the user renames it on the page)."""
    counts = Counter(e.tokens[e.highlight].strip() or repr(e.tokens[e.highlight]) for e in examples)
    if not counts:
        return "never fires on the indexed text"
    return " / ".join(token for token, _ in counts.most_common(3))


# -- a prompt ------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PromptFeatures:
    """The strongest features on each token of a prompt."""

    tokens: tuple[str, ...]
    top: tuple[tuple[tuple[int, float], ...], ...]  # per token: (latent, activation), strongest first
    codes: torch.Tensor  # [pos, d_sae] the whole code, for search and plots


def prompt_features(model: LoadedModel, sae: SparseAutoencoder, prompt: str, *, per_token: int = 5) -> PromptFeatures:
    """Encode ``prompt``'s activations at the SAE's hook point; the first token (the attention sink) is skipped."""
    ids = torch.tensor([tokenize(model, prompt)])
    check_length(model, ids.shape[1])
    if ids.shape[1] < 2:
        raise InputError("The prompt needs at least two tokens: the first one (the attention sink) is not encoded.")
    code = sae.encode(hook_activations(model, ids, sae.hook_name)[0])  # [pos, d_sae]
    code[:SKIPPED_POSITIONS] = 0
    tops = []
    for row in code:
        values, latents = row.topk(min(per_token, sae.d_sae))
        tops.append(tuple((int(i), float(v)) for i, v in zip(latents, values, strict=True) if v > 0))
    return PromptFeatures(tuple(token_label(model.tokenizer, int(i)) for i in ids[0]), tuple(tops), code)
