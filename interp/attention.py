"""Attention patterns for every head, and the standard scores that label what heads do.

An attention pattern ``A[q, k]`` is the softmax-normalised weight that query position ``q`` puts on
key position ``k``; rows sum to 1 and the causal mask zeroes ``k > q``. With grouped-query
attention (SmolLM2: 9 query heads sharing 3 key/value heads) every *query* head still has its own
pattern, so results are ``[layer, head, query, key]`` with ``n_heads`` heads.

Head scores (Olsson et al. 2022, "In-context learning and induction heads"; the TransformerLens
head detector) are computed on probe sequences, not the user's prompt, so they describe the head:

* previous-token: mean attention from each position to the one before it;
* duplicate-token: on a sequence ``R R`` (random tokens ``R`` repeated), attention from a token in
  the second copy to the same token in the first copy;
* induction: attention from a token in the second copy to the token *after* its earlier
  occurrence (prefix matching) — the signature of a head that copies what came next last time;
* first-token (attention sink): mean attention to position 0, where heads park attention when
  they have nothing to do.

Scores are means of attention weights, so each lies in [0, 1]. The probes are random tokens drawn
with a fixed seed: the same model gives the same numbers every time. Trust a score as a label
for the head's behaviour on such sequences; a head can do other things on natural text.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import ClassVar

import numpy as np
import torch

from interp.activations import record
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_count, default_of
from interp.tokens import as_batch, check_length, token_labels, tokenize

SCORE_NAMES = ("induction", "previous_token", "duplicate_token", "first_token")
SCORE_TITLES = {
    "induction": "Induction",
    "previous_token": "Previous token",
    "duplicate_token": "Duplicate token",
    "first_token": "First token (attention sink)",
}


def pattern_hook_names(model: LoadedModel) -> list[str]:
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.info.n_layers)]


@dataclasses.dataclass(frozen=True)
class AttentionResult:
    """Every head's attention pattern on one prompt.

    Attributes:
        tokens: Readable labels of the prompt's tokens (whitespace made visible).
        token_ids: The tokenizer's ids, as the model read them.
        patterns: ``[layer, head, query, key]`` float32 array; rows sum to 1.
    """

    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    patterns: np.ndarray

    @property
    def n_layers(self) -> int:
        return self.patterns.shape[0]

    @property
    def n_heads(self) -> int:
        return self.patterns.shape[1]

    def head(self, layer: int, head: int) -> np.ndarray:
        """The ``[query, key]`` pattern of one head."""
        return self.patterns[layer, head]

    def to_frame(self, layer: int, head: int):
        """One head's pattern as a long table: query, key, their tokens, the weight."""
        import pandas as pd

        n = len(self.tokens)
        query, key = np.tril_indices(n)
        return pd.DataFrame(
            {
                "layer": layer,
                "head": head,
                "query_pos": query,
                "query_token": [self.tokens[i] for i in query],
                "key_pos": key,
                "key_token": [self.tokens[i] for i in key],
                "attention": self.patterns[layer, head][query, key],
            }
        )


def attention_patterns(model: LoadedModel, prompt: str, *, max_tokens: int | None = None) -> AttentionResult:
    """Record every head's attention pattern on ``prompt`` (one forward pass, pattern hooks only).

    Args:
        max_tokens: Refuse longer prompts with a clear message (a display limit); the model's own
            context length is always enforced.
    """
    ids = tokenize(model, prompt)
    check_length(model, len(ids), limit=max_tokens)
    names = pattern_hook_names(model)
    recording = record(model, as_batch(ids, model), names)
    patterns = recording.stack(names)[:, 0].float().cpu().numpy()  # [layer, head, q, k]
    return AttentionResult(tokens=tuple(token_labels(model, ids)), token_ids=tuple(ids), patterns=patterns)


@dataclasses.dataclass(frozen=True)
class HeadScores:
    """Standard head-type scores, each ``[layer, head]`` in [0, 1], with how they were probed."""

    induction: np.ndarray
    previous_token: np.ndarray
    duplicate_token: np.ndarray
    first_token: np.ndarray
    seed: int
    n_sequences: int
    repeat_length: int

    def score(self, name: str) -> np.ndarray:
        if name not in SCORE_NAMES:
            raise ValueError(f"Unknown head score {name!r}; choose one of {', '.join(SCORE_NAMES)}.")
        return getattr(self, name)

    def top_heads(self, name: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` highest-scoring heads as ``(layer, head, score)``."""
        scores = self.score(name)
        order = np.argsort(scores, axis=None)[::-1][:k]
        return [(int(i // scores.shape[1]), int(i % scores.shape[1]), float(scores.flat[i])) for i in order]

    def to_frame(self):
        import pandas as pd

        n_layers, n_heads = self.induction.shape
        layer, head = np.divmod(np.arange(n_layers * n_heads), n_heads)
        return pd.DataFrame({"layer": layer, "head": head, **{name: self.score(name).ravel() for name in SCORE_NAMES}})


def probe_tokens(model: LoadedModel, *, n_sequences: int, repeat_length: int, seed: int) -> torch.Tensor:
    """Random ordinary tokens, each row a sequence ``R R``: ``[n_sequences, 2 * repeat_length]``."""
    special = set(model.tokenizer.all_special_ids)
    ordinary = torch.tensor([i for i in range(model.info.d_vocab) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(ordinary), (n_sequences, repeat_length), generator=generator)
    half = ordinary[picks]
    return torch.cat([half, half], dim=1)


_score_cache: dict[tuple[str, int, int, int], HeadScores] = {}
_score_cache_lock = threading.Lock()


def head_scores(model: LoadedModel, *, seed: int = 0, n_sequences: int = 8, repeat_length: int = 32) -> HeadScores:
    """Score every head as induction / previous-token / duplicate-token / first-token.

    Cached per model weights and settings, so the app pays for the probe once per model.
    """
    key = (model.info.weights_sha256, seed, n_sequences, repeat_length)
    with _score_cache_lock:
        if key in _score_cache:
            return _score_cache[key]
    scores = compute_head_scores(model, seed=seed, n_sequences=n_sequences, repeat_length=repeat_length)
    with _score_cache_lock:
        _score_cache[key] = scores
    return scores


def compute_head_scores(model: LoadedModel, *, seed: int = 0, n_sequences: int = 8, repeat_length: int = 32) -> HeadScores:
    """:func:`head_scores` without the cache (runs the probe every time; honours active hooks)."""
    repeat_length = min(repeat_length, model.info.n_ctx // 2)  # short-context models get shorter probes
    tokens = probe_tokens(model, n_sequences=n_sequences, repeat_length=repeat_length, seed=seed)
    names = pattern_hook_names(model)
    patterns = record(model, tokens, names).stack(names).float().cpu()  # [layer, batch, head, q, k]
    length = repeat_length
    second = torch.arange(length, 2 * length)  # query positions in the repeated copy
    everywhere = torch.arange(1, 2 * length)

    def mean_over(queries: torch.Tensor, keys: torch.Tensor) -> np.ndarray:
        # patterns[..., queries, keys] picks one key per query; average over batch and queries.
        return patterns[..., queries, keys].mean(dim=(1, 3)).numpy()

    scores = HeadScores(
        induction=mean_over(second, second - length + 1),
        previous_token=mean_over(everywhere, everywhere - 1),
        duplicate_token=mean_over(second, second - length),
        first_token=mean_over(everywhere, torch.zeros_like(everywhere)),
        seed=seed,
        n_sequences=n_sequences,
        repeat_length=repeat_length,
    )
    return scores


@dataclasses.dataclass(frozen=True)
class AttentionRun(RunSpec):
    """Every head's attention pattern on one prompt."""

    kind: ClassVar[str] = "attention"
    title: ClassVar[str] = "Attention patterns"
    mirrors = (attention_patterns,)

    prompt: str
    max_tokens: int | None = default_of(attention_patterns, "max_tokens")  # a display limit; the context always holds

    def run(self, model: LoadedModel, progress: Progress | None = None) -> AttentionResult:
        return attention_patterns(model, self.prompt, max_tokens=self.max_tokens)


@dataclasses.dataclass(frozen=True)
class HeadScoresRun(RunSpec):
    """Head-type scores (induction, previous-token, duplicate-token, first-token) on random repeated probes."""

    kind: ClassVar[str] = "head_scores"
    title: ClassVar[str] = "Head types"
    mirrors = (compute_head_scores, head_scores)

    seed: int = default_of(compute_head_scores, "seed")
    n_sequences: int = default_of(compute_head_scores, "n_sequences")
    repeat_length: int = default_of(compute_head_scores, "repeat_length")

    def __post_init__(self) -> None:
        check_count("number of probe sequences", self.n_sequences, high=256)
        check_count("repeat length", self.repeat_length, low=2, high=4096)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> HeadScores:
        # Uncached on purpose: a replay must really recompute (head_scores() caches per model).
        return compute_head_scores(model, seed=self.seed, n_sequences=self.n_sequences, repeat_length=self.repeat_length)
