"""Contrast pairs: the built-in datasets, and pairs a user uploads as CSV (``positive,negative``)."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from interp.errors import InputError

DATA = Path(__file__).resolve().parent / "data"
BUILT_IN = {
    "sentiment": "Sentiment: positive vs negative statements",
    "formality": "Formality: formal vs casual phrasing",
    "weddings": "Topic: weddings vs office life (the ActAdd paper's example)",
}
MAX_PAIRS = 1000


@dataclasses.dataclass(frozen=True)
class ContrastPairs:
    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.positive)

    def __post_init__(self) -> None:
        if len(self.positive) != len(self.negative):
            raise InputError("Every positive example needs a negative one.")


def built_in(name: str) -> ContrastPairs:
    if name not in BUILT_IN:
        raise InputError(f"Unknown dataset {name!r}; choose from {', '.join(BUILT_IN)}.")
    return read_pairs(f"{name}.csv", (DATA / f"{name}.csv").read_bytes(), name=name)


def read_pairs(file_name: str, data: bytes, *, name: str | None = None) -> ContrastPairs:
    """Parse a ``positive,negative`` CSV (header required), with messages that say where to fix it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{file_name}, line {line}: not UTF-8 text. Save the file as UTF-8.") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [c.strip().lower() for c in next(reader)]
    except StopIteration:
        raise InputError(f"{file_name} is empty. It needs a header 'positive,negative' and one pair per row.") from None
    except csv.Error as exc:
        raise InputError(f"{file_name}, line 1: {exc}") from None
    if "positive" not in header or "negative" not in header:
        raise InputError(
            f"{file_name}, line 1: the header must name 'positive' and 'negative' columns (found {', '.join(header) or 'none'})."
        )
    pos_col, neg_col = header.index("positive"), header.index("negative")
    positive, negative, problems = [], [], []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(pos_col, neg_col) or not row[pos_col].strip() or not row[neg_col].strip():
                problems.append(f"line {line}: a pair needs both a positive and a negative text")
                continue
            positive.append(row[pos_col].strip())
            negative.append(row[neg_col].strip())
    except csv.Error as exc:
        raise InputError(f"{file_name}, line {reader.line_num}: {exc}. Check the quotes.") from None
    if problems:
        raise InputError(f"{file_name}: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
    if len(positive) < 2:
        raise InputError(f"{file_name} has {len(positive)} pair(s); a direction needs at least 2 (30+ is better).")
    if len(positive) > MAX_PAIRS:
        raise InputError(f"{file_name} has {len(positive)} pairs; the limit is {MAX_PAIRS}.")
    return ContrastPairs(name or Path(file_name).stem, tuple(positive), tuple(negative))
