"""Scoring steered text: the behaviour (independent of the model under test) and the damage.

Behaviour scorers never use the steered model, so a vector cannot "win" by fooling its own judge:
VADER sentiment (a lexicon and rules, shipped with ``vaderSentiment``), the rate of words from a
topic list, or (see ``steering.rlhf``) a separately trained reward model. Damage is measured
as the perplexity of the steered text under the *unsteered* model — how surprising the unsteered
model finds it — and as repetition (distinct-n: the share of n-grams that are unique).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from interp.hooks import intervene
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, pad_rows, tokenize

_WEDDING_TEXT = (
    "wedding weddings wed wedded marry married marriage marriages bride brides bridal groom grooms bridesmaid "
    "bridesmaids honeymoon honeymoons vows vow engaged engagement fiance fiancee ring rings ceremony ceremonies "
    "reception bouquet veil newlyweds newlywed spouse husband wife couple couples proposal propose proposed "
    "groomsmen officiant altar chapel"
)
WEDDING_WORDS = frozenset(_WEDDING_TEXT.split())  # the ActAdd paper's topic, widened to inflections
WORD = re.compile(r"[A-Za-z']+")


@dataclasses.dataclass(frozen=True)
class Scorer:
    """A behaviour measure: ``score(texts) -> one number per text`` (higher = more of it)."""

    name: str
    unit: str
    score: Callable[[Sequence[str]], np.ndarray]


@functools.lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(texts: Sequence[str]) -> np.ndarray:
    """VADER compound sentiment in [-1, 1] per text."""
    analyser = _vader()
    return np.array([analyser.polarity_scores(text)["compound"] for text in texts], dtype=np.float64)


def topic_rate(texts: Sequence[str], words: frozenset[str] = WEDDING_WORDS) -> np.ndarray:
    """Share of each text's words that are in ``words`` (0 for an empty text)."""
    rates = []
    for text in texts:
        tokens = [w.lower() for w in WORD.findall(text)]
        rates.append(sum(w in words for w in tokens) / len(tokens) if tokens else 0.0)
    return np.array(rates, dtype=np.float64)


SENTIMENT = Scorer("sentiment (VADER compound)", "compound score, -1..1", sentiment)
WEDDINGS = Scorer("wedding-word rate", "share of words", topic_rate)
SCORERS = {"sentiment": SENTIMENT, "weddings": WEDDINGS}


def distinct_n(texts: Sequence[str], n: int = 2) -> np.ndarray:
    """Share of distinct word n-grams per text (1 = no repetition; 0 for texts too short to judge)."""
    values = []
    for text in texts:
        words = WORD.findall(text.lower())
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        values.append(len(set(grams)) / len(grams) if grams else 0.0)
    return np.array(values, dtype=np.float64)


def perplexity(
    model: LoadedModel, prompts: Sequence[str], continuations: Sequence[Sequence[int]], *, batch_size: int = 16
) -> np.ndarray:
    """Perplexity of each continuation (token ids) given its prompt, under the model *as loaded*.

    Call it outside any steering block: the point is how the unsteered model judges the text.
    Continuations with no tokens get NaN.
    """
    pad = baseline_token_id(model)
    values = np.full(len(prompts), np.nan)
    jobs = [(i, tokenize(model, p), list(c)) for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)) if len(c) > 0]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        tokens = pad_rows([prompt + continuation for _, prompt, continuation in chunk], pad, side="right").tokens
        with intervene(model), torch.inference_mode():
            log_probs = torch.log_softmax(model.bridge(tokens.to(model.device)).float(), dim=-1).cpu()
        for row, (index, prompt, continuation) in enumerate(chunk):
            positions = torch.arange(len(prompt) - 1, len(prompt) + len(continuation) - 1)
            nll = -log_probs[row, positions, torch.tensor(continuation)].mean().item()
            values[index] = math.exp(nll)
    return values


def continuation_preference(model: LoadedModel, prompt: str, target: str, anti: str, hooks=None) -> float:
    """log P(target continuation) - log P(anti-target continuation) after ``prompt`` (optionally steered)."""
    prompt_ids = tokenize(model, prompt)
    totals = []
    for text in (target, anti):
        ids = model.tokenizer(text, add_special_tokens=False).input_ids
        tokens = torch.tensor([prompt_ids + ids])
        with intervene(model, hooks), torch.inference_mode():
            log_probs = torch.log_softmax(model.bridge(tokens.to(model.device)).float(), dim=-1)[0]
        positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) + len(ids) - 1)
        totals.append(float(log_probs[positions, torch.tensor(ids)].sum()))
    return totals[0] - totals[1]
