"""Tokenising prompts exactly as the Hugging Face tokenizer does, and labelling tokens readably.

Steerscope tokenises with the model's own tokenizer and adds nothing: ``bridge.to_tokens``
prepends a BOS token where the Hugging Face tokenizer does not (SmolLM2), which would make every
logit differ from the model's real behaviour. If the tokenizer adds BOS itself, so do we.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, Literal

import torch

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.validation import check_text

WHITESPACE_GLYPHS = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def tokenize(model: LoadedModel, text: str | Sequence[int], *, chat: bool = False) -> list[int]:
    """Token ids for ``text`` as the model's tokenizer produces them.

    Args:
        text: The prompt; or token ids, taken as they are (for probes built from ids).
        chat: Wrap ``text`` as a user turn with the tokenizer's chat template (instruct models).

    Raises:
        InputError: the text is not ``str`` (``bytes`` are refused, not read as ids), holds a lone
            surrogate or is too long (:func:`interp.validation.check_text`); or it yields no tokens
            and the model has no BOS token to start from.
    """
    tokenizer = model.tokenizer
    if not isinstance(text, str):
        if isinstance(text, bytes | bytearray | memoryview) or not hasattr(text, "__iter__"):
            check_text("prompt", text)  # says what was given instead of text
        try:
            ids = [int(i) for i in text]
        except (TypeError, ValueError):
            raise InputError("Token ids must be a list of whole numbers (or give the prompt as text).") from None
        if not ids or min(ids) < 0 or max(ids) >= model.info.d_vocab:
            raise InputError(f"Token ids must be a non-empty list of ids in 0..{model.info.d_vocab - 1}.")
        return ids
    check_text("prompt", text)
    if chat and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
    else:
        ids = list(tokenizer(text, add_special_tokens=True).input_ids)
    if not ids:
        if tokenizer.bos_token_id is None:
            raise InputError("The prompt is empty. Type some text.")
        ids = [tokenizer.bos_token_id]
    return ids


def check_length(model: LoadedModel, n_tokens: int, *, limit: int | None = None, what: str = "The prompt") -> None:
    """Raise a clear InputError when ``n_tokens`` exceeds the model's context or a display limit."""
    if n_tokens > model.info.n_ctx:
        raise InputError(f"{what} is {n_tokens} tokens; {model.info.name} reads at most {model.info.n_ctx}. Shorten it.")
    if limit is not None and n_tokens > limit:
        raise InputError(f"{what} is {n_tokens} tokens; this view shows at most {limit}. Shorten it.")


def as_batch(ids: list[int], model: LoadedModel) -> torch.Tensor:
    return torch.tensor([ids], dtype=torch.long, device=model.device)


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def token_label(tokenizer: Any, token_id: int) -> str:
    """A label a person can read: whitespace made visible, partial UTF-8 bytes shown as hex."""
    text = tokenizer.decode([token_id])
    if "\ufffd" in text:
        raw = tokenizer.convert_ids_to_tokens(token_id) or ""
        decoder = _byte_decoder()
        if raw.startswith("<0x") and raw.endswith(">"):  # sentencepiece byte-fallback token
            return raw
        if raw and all(ch in decoder for ch in raw):
            return "<" + " ".join(f"{decoder[ch]:02X}" for ch in raw) + ">"
        return raw or f"<id {token_id}>"
    if text == "":
        return f"<id {token_id}>"
    return text.translate(WHITESPACE_GLYPHS)


def token_labels(model: LoadedModel, ids: list[int]) -> list[str]:
    return [token_label(model.tokenizer, i) for i in ids]


def unique_labels(labels: list[str]) -> list[str]:
    """Labels made unique by position (plotly merges repeated category labels on an axis)."""
    return [f"{label} [{i}]" for i, label in enumerate(labels)]


def single_token_id(model: LoadedModel, text: str) -> int:
    """The id of ``text`` if it is exactly one token, else an InputError naming the split."""
    ids = model.tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) != 1:
        pieces = ", ".join(repr(model.tokenizer.decode([i])) for i in ids) or "nothing"
        raise InputError(
            f"{text!r} is {len(ids)} tokens for this model ({pieces}); give a single token "
            "(often with a leading space, like ' Paris')."
        )
    return ids[0]


def baseline_token_id(model: LoadedModel) -> int:
    """The token that pads rows and stands in for a removed token (attribution baselines, alignment)."""
    tokenizer = model.tokenizer
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise InputError(f"{model.info.name}'s tokenizer has no pad, unknown or end token to use as a baseline.")


@dataclasses.dataclass(frozen=True)
class PaddedRows:
    """Token rows of different lengths in one rectangle.

    ``tokens`` is ``[batch, width]``; ``mask`` is 1 where a real token stands. Left padding puts every
    row's *last* tokens in the same columns (generation, last-position readouts); right padding keeps
    real positions at their own indices, so a causal model's activations there are unaffected.
    """

    tokens: torch.Tensor  # (batch, width) long
    mask: torch.Tensor  # (batch, width) long, 1 = real token
    side: Literal["left", "right"]

    @property
    def lengths(self) -> torch.Tensor:  # (batch,)
        return self.mask.sum(dim=1)

    @property
    def last_positions(self) -> torch.Tensor:  # (batch,) index of each row's last real token
        width = self.tokens.shape[1]
        return torch.full_like(self.lengths, width - 1) if self.side == "left" else self.lengths - 1


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, *, side: Literal["left", "right"] = "right") -> PaddedRows:
    """Stack token rows into one tensor, padding with ``pad_id`` on the given side."""
    if not rows:
        raise InputError("There are no token rows to batch.")
    width = max(len(row) for row in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        tokens[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return PaddedRows(tokens, mask, side)


@dataclasses.dataclass(frozen=True)
class UnknownText:
    """How much of a text the tokenizer could only read as its unknown token.

    A word-level tokenizer (the planted toy model's) turns every word outside its vocabulary into one
    ``unk`` token, so an English prompt silently becomes ``<|endoftext|>`` tokens; byte-level tokenizers
    (GPT-2, SmolLM2) never do.
    """

    n_tokens: int
    n_unknown: int
    n_characters: int  # characters of the text those unknown tokens stand for
    unknown_token: str

    @property
    def fraction(self) -> float:
        return self.n_unknown / self.n_tokens if self.n_tokens else 0.0

    def message(self, model_name: str) -> str:
        return (
            f"{self.n_unknown} of the prompt's {self.n_tokens} tokens ({self.n_characters} characters) are outside "
            f"{model_name}'s vocabulary and read as {self.unknown_token}: the model sees those as one unknown token, "
            "not as your text."
        )


def unknown_tokens(model: LoadedModel, text: str) -> UnknownText:
    """Which part of ``text`` the tokenizer reads as its unknown token (none for byte-level tokenizers).

    Example:
        >>> unknown_tokens(planted, "t1 t2 hello").n_unknown
        1
    """
    tokenizer = model.tokenizer
    unk_id, unk = tokenizer.unk_token_id, tokenizer.unk_token or ""
    check_text("prompt", text)
    if unk_id is None:
        return UnknownText(len(tokenize(model, text)), 0, 0, unk)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=getattr(tokenizer, "is_fast", False))
    ids = list(encoded.input_ids)
    offsets = encoded.get("offset_mapping") or [(0, 0)] * len(ids)
    unknown = [
        (start, end) for i, (start, end) in zip(ids, offsets, strict=True) if i == unk_id and text[start:end] != unk
    ]  # the unknown token typed as itself is not unknown text
    if not getattr(tokenizer, "is_fast", False):
        unknown = [(0, 0)] * (ids.count(unk_id) - text.count(unk))
    return UnknownText(len(ids), len(unknown), sum(end - start for start, end in unknown), unk)
