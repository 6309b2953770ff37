"""Preference pairs: the built-in set, reading an upload (CSV or JSONL), and a train/test split by prompt.

A pair is (prompt, chosen, rejected): two replies to one prompt, the first preferred. The split keeps
every prompt on one side, so a held-out accuracy is measured on prompts the reward model never saw.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from collections.abc import Sequence
from pathlib import Path

from interp.errors import InputError
from interp.json_lines import json_object

DATA = Path(__file__).resolve().parents[1] / "data" / "preferences.jsonl"
MAX_PAIRS = 2000
MIN_PAIRS = 10
FIELDS = ("prompt", "chosen", "rejected")
EXAMPLE = '{"prompt": "...", "chosen": "...", "rejected": "..."}'


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    trait: str = ""


def builtin_preferences() -> list[PreferencePair]:
    """160 pairs written for Steerscope: 80 prompts, helpful vs unhelpful and polite vs rude."""
    return read_preferences(DATA.name, DATA.read_bytes())


def read_preferences(name: str, data: bytes) -> list[PreferencePair]:
    """Parse CSV or JSONL with ``prompt``, ``chosen``, ``rejected`` (and optional ``trait``)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{name}, line {line}: not UTF-8 text. Save the file as UTF-8.") from None
    if name.lower().endswith((".jsonl", ".ndjson")):
        records = _json_lines(name, text)
    elif name.lower().endswith(".csv"):
        records = _csv_rows(name, text)
    else:
        raise InputError(f"{name}: upload preference pairs as .csv or .jsonl.")
    pairs = [_pair(name, number, row) for number, row in records]
    if len(pairs) < MIN_PAIRS:
        raise InputError(f"{name} has {len(pairs)} pair(s); a reward model needs at least {MIN_PAIRS} (100+ is better).")
    if len(pairs) > MAX_PAIRS:
        raise InputError(f"{name} has {len(pairs)} pairs; the limit is {MAX_PAIRS}.")
    return pairs


def _json_lines(name: str, text: str) -> list[tuple[int, dict]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append((number, json_object(name, number, line, EXAMPLE)))
    return records


def _csv_rows(name: str, text: str) -> list[tuple[int, dict]]:
    records = []
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            records.append((reader.line_num, row))
    except csv.Error as exc:
        raise InputError(f"{name}, line {reader.line_num}: {exc}. Check the quotes.") from None
    return records


def _pair(name: str, number: int, row: dict) -> PreferencePair:
    not_text = [key for key in (*FIELDS, "trait") if row.get(key) is not None and not isinstance(row[key], str)]
    if not_text:
        raise InputError(
            f"{name}, line {number}: {not_text[0]!r} must be text (in quotes), not {type(row[not_text[0]]).__name__}."
        )
    missing = [key for key in FIELDS if not str(row.get(key) or "").strip()]
    if missing:
        raise InputError(f"{name}, line {number}: missing {', '.join(repr(m) for m in missing)}.")
    if str(row["chosen"]).strip() == str(row["rejected"]).strip():
        raise InputError(f"{name}, line {number}: 'chosen' and 'rejected' are the same text.")
    return PreferencePair(
        str(row["prompt"]).strip(), str(row["chosen"]).strip(), str(row["rejected"]).strip(), str(row.get("trait") or "")
    )


def split_by_prompt(
    pairs: Sequence[PreferencePair], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Train/test split that keeps every prompt on one side (stratified by trait)."""
    rng = random.Random(seed)
    test_prompts: set[str] = set()
    for trait in sorted({p.trait for p in pairs}):
        prompts = sorted({p.prompt for p in pairs if p.trait == trait})
        rng.shuffle(prompts)
        test_prompts.update(prompts[: max(1, round(test_fraction * len(prompts)))])
    return [p for p in pairs if p.prompt not in test_prompts], [p for p in pairs if p.prompt in test_prompts]
