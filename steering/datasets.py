"""Contrast pairs: the built-in datasets, and pairs a user uploads as CSV (``positive,negative``)."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

from interp.errors import InputError
from interp.validation import check_text

DATA = Path(__file__).resolve().parent / "data"
BUILT_IN = {
    "sentiment": "Sentiment: positive vs negative statements",
    "formality": "Formality: formal vs casual phrasing",
    "weddings": "Topic: weddings vs office life (the ActAdd paper's example)",
}
MAX_PAIRS = 1000
MAX_PAIR_CHARS = 2_000  # a sentence or a paragraph; steering.make also caps each text's tokens


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
        if len(self.positive) > MAX_PAIRS:
            raise InputError(f"There are {len(self.positive)} pairs; the limit is {MAX_PAIRS}. Use fewer.")
        for side, texts in (("positive", self.positive), ("negative", self.negative)):
            for i, text in enumerate(texts):
                check_text(f"{side} text of pair {i + 1}", text, max_chars=MAX_PAIR_CHARS, allow_empty=False)


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
    rows: list[tuple[str, str, str]] = []
    try:
        for row in reader:
            cells = [row[col] if col < len(row) else "" for col in (pos_col, neg_col)]
            rows.append((f"line {reader.line_num}", cells[0], cells[1]))
    except csv.Error as exc:
        raise InputError(f"{file_name}, line {reader.line_num}: {exc}. Check the quotes.") from None
    return pairs_from_rows(file_name, rows, name=name or Path(file_name).stem)


def pairs_from_rows(where: str, rows: Sequence[tuple[str, object, object]], *, name: str) -> ContrastPairs:
    """Contrast pairs from ``(row label, positive, negative)`` rows exactly as typed (only outer spaces trimmed).

    The pairs editor's rows come here directly, not through a CSV: a pair starting with ``- + = @`` is a
    sentence, and only a CSV written *for a spreadsheet* needs those guarded. Blank rows are skipped;
    an empty cell (None or NaN from the editor) counts as blank.

    Args:
        where: The file or table the rows came from, for messages ("pairs.csv", "the pairs table").
    """
    positive, negative, problems = [], [], []
    for label, pos, neg in rows:
        pos, neg = _cell(pos), _cell(neg)
        if not pos and not neg:
            continue
        if not pos or not neg:
            problems.append(f"{label}: a pair needs both a positive and a negative text")
            continue
        for side, text in (("positive", pos), ("negative", neg)):
            try:
                check_text(f"{side} text", text, max_chars=MAX_PAIR_CHARS)
            except InputError as exc:
                problems.append(f"{label}: {exc}")
        positive.append(pos)
        negative.append(neg)
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
    if len(positive) < 2:
        raise InputError(f"{where} has {len(positive)} pair(s); a direction needs at least 2 (30+ is better).")
    if len(positive) > MAX_PAIRS:
        raise InputError(f"{where} has {len(positive)} pairs; the limit is {MAX_PAIRS}. Use fewer.")
    return ContrastPairs(name, tuple(positive), tuple(negative))


def _cell(value: object) -> str:
    """A table cell as text: None and NaN (an empty cell) are blank; other values as typed."""
    if value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType":
        return ""
    return str(value).strip()
