"""The checks every entry point's input goes through: numbers, texts, lists of texts, typed numbers.

A page, the command line, the Python API and a replayed record all reach the core through specs and
core functions, and those call the checks here, so one mistake gets one message wherever it is made.
Each check raises :class:`~interp.errors.InputError` saying what was wrong and what to do about it.

What is refused, and why:

* **Non-finite numbers** (NaN, ±inf) as coefficients, temperatures, top-p, learning rates: they do not
  fail at once but make empty text, an ``IndexError`` in sampling or a NaN model.
* **Texts that are not ``str``**: a ``bytes`` prompt would otherwise be read as a list of token ids.
* **Lone surrogates** (``'\\ud800'``): Python strings can hold them, UTF-8 and the tokenizers cannot.
* **Very long texts**: one pasted book runs the shared model on tens of thousands of tokens; the
  character cap here stops it before tokenising, and token caps (:func:`interp.tokens.check_length`)
  after.

Example:
    >>> check_finite("coefficient", float("nan"))
    Traceback (most recent call last):
    InputError: The coefficient must be a finite number (got nan).
    >>> parse_numbers("coefficients", "1, 2, 3")
    (1.0, 2.0, 3.0)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from interp.errors import InputError

MAX_TEXT_CHARS = 20_000  # a prompt; about 5k tokens of English, well over every model's display limits
MAX_TEXTS = 1_000  # prompts or pairs in one list


def check_finite(name: str, value: float, *, low: float | None = None, high: float | None = None) -> None:
    """A number that must be finite (and in ``[low, high]`` where given)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"The {name} must be a finite number (got {value!r}).")
    if low is not None and value < low:
        raise InputError(f"The {name} must be at least {low:g} (got {value:g}).")
    if high is not None and value > high:
        raise InputError(f"The {name} must be at most {high:g} (got {value:g}).")


def check_count(name: str, value: int, *, low: int = 1, high: int | None = None) -> None:
    """A whole number of things (samples, steps, tokens) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"The {name} must be a whole number (got {value!r}).")
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"The {name} must be {span} (got {value}).")


def check_choice(name: str, value: Any, choices: tuple | list | dict) -> None:
    """One of ``choices``."""
    if value not in choices:
        raise InputError(f"Unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}.")


def check_text(name: str, value: Any, *, max_chars: int = MAX_TEXT_CHARS, allow_empty: bool = True) -> str:
    """A text (``str``, not bytes) that UTF-8 can hold, at most ``max_chars`` long; returned as given.

    Args:
        name: What the text is, as the user calls it ("prompt", "positive text").
        allow_empty: False when an empty or all-blank text makes no sense (a contrast pair's side).
    """
    if isinstance(value, bytes | bytearray):
        raise InputError(f"The {name} must be text (str), not bytes: decode it first, e.g. data.decode('utf-8').")
    if not isinstance(value, str):
        raise InputError(f"The {name} must be text (str), not {type(value).__name__}.")
    if len(value) > max_chars:
        raise InputError(f"The {name} is {len(value):,} characters; the limit is {max_chars:,}. Shorten it.")
    if not allow_empty and not value.strip():
        raise InputError(f"The {name} is empty. Type some text.")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        at = surrogate.start()
        raise InputError(
            f"The {name} holds a lone surrogate {value[at]!r} (U+{ord(value[at]):04X}) at character {at + 1}, "
            "which is not a real character (often a broken copy-paste of an emoji): delete or retype it."
        )
    return value


def check_texts(name: str, values: Any, *, max_items: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS) -> tuple[str, ...]:
    """A non-empty list of texts (not one text), each checked by :func:`check_text`; returned as a tuple.

    Args:
        name: The texts, plural ("prompts"); messages name one of them "prompts number 3".
    """
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Sequence):
        raise InputError(f"Give the {name} as a list of texts (got {type(values).__name__}).")
    if not values:
        raise InputError(f"Give at least one {name.removesuffix('s')} (a list of texts).")
    if len(values) > max_items:
        raise InputError(f"There are {len(values):,} {name}; the limit is {max_items:,}. Use fewer.")
    for i, value in enumerate(values):
        check_text(f"{name} number {i + 1}", value, max_chars=max_chars)
    return tuple(values)


def parse_numbers(name: str, text: str, *, max_items: int = 64) -> tuple[float, ...]:
    """Finite numbers typed into one box, separated by commas or semicolons (``"1, 2.5, -3"``)."""
    check_text(name, text, max_chars=2_000)
    pieces = [piece.strip() for piece in re.split(r"[,;]", text) if piece.strip()]
    if not pieces:
        raise InputError(f"Give at least one of the {name}, separated by commas, like 1, 2, 3.")
    if len(pieces) > max_items:
        raise InputError(f"There are {len(pieces)} {name}; the limit is {max_items}.")
    numbers = []
    for piece in pieces:
        try:
            number = float(unicodedata.normalize("NFKC", piece).replace("\u2212", "-"))  # a typographic minus too
        except ValueError:
            raise InputError(
                f"{piece!r} is not a number: give the {name} as numbers separated by commas, like 1, 2, 3."
            ) from None
        if not math.isfinite(number):
            raise InputError(f"{piece!r} is not a finite number: the {name} must be ordinary numbers, like 1, 2, 3.")
        numbers.append(number)
    return tuple(numbers)


def parse_ints(name: str, text: str, *, low: int = 0, high: int | None = None, max_items: int = 256) -> tuple[int, ...]:
    """Whole numbers typed into one box (``"4"`` or ``"3, 4, 5"``), each in ``[low, high]``."""
    numbers = parse_numbers(name, text, max_items=max_items)
    whole = []
    for number in numbers:
        if not number.is_integer():
            raise InputError(f"The {name} must be whole numbers (got {number:g}).")
        check_count(name, int(number), low=low, high=high)
        whole.append(int(number))
    return tuple(whole)


_SURROGATE = re.compile("[\ud800-\udfff]")
