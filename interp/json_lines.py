"""One line of a JSONL upload read as a JSON object, with a message for every way it can fail.

Python's parser raises ``RecursionError`` on brackets nested about a thousand deep and ``ValueError``
on an integer of thousands of digits (and converting one takes time quadratic in its length). An
upload is a user's file, so both are answered here as an :class:`~interp.errors.InputError` that
names the file, the line and what to fix — never as a crash.
"""

from __future__ import annotations

import json
from typing import Any

from interp.errors import InputError

MAX_DIGITS = 100  # no field of a prompt or preference file is a number this long


class _LongNumber(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _LongNumber(digits)
    return int(text)


def json_object(name: str, number: int, line: str, example: str = '{"prompt": "..."}') -> dict[str, Any]:
    """Parse ``line`` (line ``number`` of file ``name``) as one JSON object.

    Raises:
        InputError: the line is not JSON, not an object, nested too deeply or holds an over-long number.

    Example:
        >>> json_object("p.jsonl", 1, '{"prompt": "Hi"}')
        {'prompt': 'Hi'}
    """
    where = f"{name}, line {number}"
    try:
        value = json.loads(line, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}, column {exc.colno}: not valid JSON ({exc.msg}).") from None
    except RecursionError:
        raise InputError(
            f"{where}: the JSON is nested too deeply to read. Each line must be one flat object like {example}."
        ) from None
    except _LongNumber as exc:
        raise InputError(
            f"{where}: a number with {exc.digits:,} digits; numbers here can have at most {MAX_DIGITS}. "
            "If it is meant as text, put it in quotes."
        ) from None
    except ValueError as exc:  # any other value Python's parser refuses
        raise InputError(f"{where}: cannot read this JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: each line must be a JSON object like {example}.")
    return value
