"""What a variant costs and what it changes inside, measured against the original on the same inputs.

* :func:`quality` — perplexity on held-out text (the standard library's pydoc topics: PSF-licensed, always present),
  the next-token KL divergence from the original (teacher-forced on the same text, nats per token) and how often
  both pick the same next token.
* :func:`footprint` — weight bytes counted from the storages that hold them, the bytes of the saved weights, forward
  latency and greedy decode speed, each timed on this machine (median of several runs).
* :func:`inside` — which attention head types survive (induction and previous-token heads, by the Attention page's
  scores) and whether the IOI circuit moved (head activation patching: correlation with the original's, and the
  top heads of each).
"""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import torch
from scipy.stats import pearsonr

from interp.attention import compute_head_scores
from interp.circuits.patching import patch_sweep
from interp.circuits.tasks import ioi_task
from interp.components import head_label
from interp.generation import generate_batch
from interp.hooks import intervene
from interp.loading import LoadedModel

SURVIVES = 0.5  # a head survives while its score stays at least this share of the original's
HEAD_TYPE = 0.2  # a head counts as of a type when its score is at least this (the Attention page's scores, 0-1)


def held_out_tokens(model: LoadedModel, *, windows: int = 4, length: int = 128) -> torch.Tensor:
    """``[windows, length]`` token ids of held-out text: consecutive slices of the pydoc topics.

    A tokenizer that knows almost none of that text (the planted models' word-level ones: ``t0 .. t63``) gets random
    repeated sequences of its own tokens instead — what those models were made for — rather than a window of unknown
    tokens on which every variant would look perfect.
    """
    from pydoc_data.topics import topics

    from interp.attention import probe_tokens

    text = "\n\n".join(topics[key] for key in sorted(topics))[:200_000]
    ids = model.tokenizer(text, add_special_tokens=False).input_ids
    needed = windows * length
    unknown = model.tokenizer.unk_token_id
    if len(ids) < needed or (unknown is not None and ids[:needed].count(unknown) > needed // 2):
        return probe_tokens(model, n_sequences=windows, repeat_length=length // 2, seed=0)[:, :length]
    return torch.tensor(ids[:needed]).view(windows, length)


@dataclasses.dataclass(frozen=True)
class Quality:
    perplexity: float  # of the held-out text under the variant
    original_perplexity: float
    kl_to_original: float  # nats per token: KL(original || variant) of the next-token distributions
    top1_agreement: float  # fraction of positions where both pick the same next token
    n_tokens: int


def quality(original: LoadedModel, variant: LoadedModel, tokens: torch.Tensor) -> Quality:
    """Perplexity, KL to the original and top-1 agreement on ``tokens`` ``[windows, length]``."""
    log_probs = []
    for model in (original, variant):
        with intervene(model), torch.inference_mode():
            log_probs.append(torch.log_softmax(model.bridge(tokens.to(model.device)).float(), dim=-1)[:, :-1].cpu())
    exact, approximate = log_probs
    targets = tokens[:, 1:, None]
    nll = [-lp.gather(-1, targets).mean().item() for lp in (exact, approximate)]
    kl = (exact.exp() * (exact - approximate)).sum(-1).mean().item()
    agreement = (exact.argmax(-1) == approximate.argmax(-1)).float().mean().item()
    return Quality(float(np.exp(nll[1])), float(np.exp(nll[0])), float(kl), float(agreement), int(targets.numel()))


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Size and speed. Timings end in ``seconds``, which a replay does not compare (they are this machine's)."""

    weight_bytes: int  # in memory, from the storages
    saved_bytes: int  # the state dict as torch.save writes it
    forward_seconds: float  # one forward pass of the held-out windows (median)
    decode_seconds: float  # greedy decoding of ``new_tokens`` tokens after one prompt (median)
    new_tokens: int

    @property
    def forward_ms(self) -> float:
        return 1e3 * self.forward_seconds

    @property
    def decode_tokens_per_second(self) -> float:
        return self.new_tokens / self.decode_seconds


def footprint(model: LoadedModel, tokens: torch.Tensor, *, repeats: int = 3, new_tokens: int = 16) -> Footprint:
    from interp.compression.variants import weight_bytes

    buffer = io.BytesIO()
    torch.save(model.hf_model.state_dict(), buffer)  # our own weights, never read back: sizing only
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with intervene(model), torch.inference_mode():
            model.bridge(tokens.to(model.device), logits_to_keep=1)
        times.append(time.perf_counter() - start)
    prompt = model.tokenizer.decode(tokens[0, :16].tolist())
    decodes = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_batch(model, [prompt], max_new_tokens=new_tokens, temperature=0.0, stop_at_eos=False)
        decodes.append(time.perf_counter() - start)
    return Footprint(weight_bytes(model), buffer.getbuffer().nbytes, float(np.median(times)), float(np.median(decodes)),
                     new_tokens)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Inside:
    """Head types and the IOI circuit on the variant, beside the original's."""

    induction_heads: tuple[tuple[str, float, float], ...]  # the original's top heads (score >= HEAD_TYPE): (head,
    # original score, variant score)
    previous_token_heads: tuple[tuple[str, float, float], ...]
    ioi_correlation: float  # Pearson correlation of the variant's head-patching scores with the original's
    ioi_top_original: tuple[str, ...]
    ioi_top_variant: tuple[str, ...]

    def surviving(self, kind: str) -> list[str]:
        """The original's heads of ``kind`` whose score on the variant is still over half the original's."""
        heads = self.induction_heads if kind == "induction" else self.previous_token_heads
        return [head for head, before, after in heads if after >= SURVIVES * before]

    def lost(self, kind: str) -> list[str]:
        heads = self.induction_heads if kind == "induction" else self.previous_token_heads
        return [head for head, before, after in heads if after < SURVIVES * before]


def inside(original: LoadedModel, variant: LoadedModel, *, top: int = 3, ioi: bool = True) -> Inside:
    """Which head types survive, and (``ioi``) how far the IOI head-patching ranking moved."""
    before, after = compute_head_scores(original), compute_head_scores(variant)

    def compare(kind: str) -> tuple[tuple[str, float, float], ...]:
        return tuple((head_label(layer, head), score, float(after.score(kind)[layer, head]))
                     for layer, head, score in before.top_heads(kind, top) if score >= HEAD_TYPE)  # fmt: skip

    correlation, top_original, top_variant = float("nan"), (), ()
    if ioi:
        task = ioi_task(original)
        sweeps = [patch_sweep(model, task.clean, task.corrupted, task.metric, "heads") for model in (original, variant)]
        # Pearson, not Spearman: most of the 270 heads patch to ~0, and their ranks are noise (bf16 alone moved
        # the Spearman to 0.69 while the top heads and their scores stayed put)
        correlation = float(pearsonr(sweeps[0].values.ravel(), sweeps[1].values.ravel()).statistic)
        top_original, top_variant = (tuple(label for label, _ in sweep.ranked(top)) for sweep in sweeps)
    return Inside(compare("induction"), compare("previous_token"), correlation, top_original, top_variant)
