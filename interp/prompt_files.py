"""Reading uploaded prompt files: CSV, TSV, TXT (one prompt per line) or JSONL.

A file holds prompts and, optionally, what to explain for each: a ``target`` token or a
``continuation``. Problems with the whole file (encoding, format, a missing ``prompt`` column, too
many rows) raise :class:`~interp.errors.InputError` with the file, line and column to fix. Problems
with single rows (empty, over-long, contradictory) skip that row and list it with its reason:
nothing is dropped silently. Files are parsed as text only; nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable
from pathlib import PurePath

from interp.errors import InputError
from interp.json_lines import json_object

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_ROWS = 500
MAX_PROMPT_TOKENS = 256
MAX_BYTES = 5_000_000
OPTIONAL_COLUMNS = ("target", "continuation")


@dataclasses.dataclass(frozen=True)
class PromptRow:
    """One usable prompt, with the line it came from (1-based, header counted)."""

    line: int
    prompt: str
    target: str | None = None
    continuation: str | None = None


@dataclasses.dataclass(frozen=True)
class SkippedRow:
    line: int
    reason: str


@dataclasses.dataclass(frozen=True)
class PromptFile:
    name: str
    format: str
    rows: tuple[PromptRow, ...]
    skipped: tuple[SkippedRow, ...]
    ignored_columns: tuple[str, ...] = ()

    def summary(self) -> str:
        text = f"{self.name}: {len(self.rows)} prompt(s) read"
        if self.skipped:
            text += f", {len(self.skipped)} row(s) skipped"
        if self.ignored_columns:
            text += f"; columns ignored: {', '.join(self.ignored_columns)}"
        return text


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name}, line {line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02X} at offset {exc.start}). "
            "Save it as UTF-8 (in a spreadsheet: 'CSV UTF-8') and upload it again."
        ) from None


def read_prompt_file(
    name: str,
    data: bytes,
    *,
    max_rows: int = MAX_ROWS,
    max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    count_tokens: Callable[[str], int] | None = None,
) -> PromptFile:
    """Parse and validate an uploaded prompt file.

    Args:
        name: The file's name; its extension picks the format.
        data: The raw bytes.
        count_tokens: The model's token counter; with it, prompts over ``max_prompt_tokens`` are skipped.

    Raises:
        InputError: the file as a whole cannot be used (the message says where and how to fix it).
    """
    suffix = PurePath(name).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{name}: unknown file type '{suffix or '(none)'}'. Upload .csv, .tsv, .txt or .jsonl.")
    if len(data) > MAX_BYTES:
        raise InputError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB. Split the file.")
    text = _decode(name, data)
    if not text.strip():
        raise InputError(f"{name} is empty. Put one prompt per row.")
    kind = FORMATS[suffix]
    if kind in {"csv", "tsv"}:
        raw, ignored = _read_table(name, text, "\t" if kind == "tsv" else ",")
    elif kind == "jsonl":
        raw, ignored = _read_jsonl(name, text), ()
    else:
        raw, ignored = _read_txt(text), ()

    rows: list[PromptRow] = []
    skipped: list[SkippedRow] = []
    for line, fields in raw:
        if isinstance(fields, str):  # a row-level problem found while parsing
            skipped.append(SkippedRow(line, fields))
            continue
        prompt = (fields.get("prompt") or "").strip()
        target = (fields.get("target") or "").strip("\r\n") or None
        continuation = (fields.get("continuation") or "").strip("\r\n") or None
        if not prompt:
            skipped.append(SkippedRow(line, "empty prompt"))
        elif target and continuation:
            skipped.append(SkippedRow(line, "both 'target' and 'continuation' are set; give one"))
        elif count_tokens is not None and (n := count_tokens(prompt)) > max_prompt_tokens:
            skipped.append(SkippedRow(line, f"prompt is {n} tokens; the limit is {max_prompt_tokens}"))
        else:
            rows.append(PromptRow(line, prompt, target, continuation))
    if len(rows) > max_rows:
        raise InputError(f"{name} has {len(rows)} usable prompts; the limit is {max_rows} per file. Split it into smaller files.")
    if not rows:
        reasons = "; ".join(f"line {s.line}: {s.reason}" for s in skipped[:5])
        raise InputError(f"{name} has no usable prompt. {reasons}")
    return PromptFile(name, kind, tuple(rows), tuple(skipped), tuple(ignored))


def _read_table(name: str, text: str, delimiter: str) -> tuple[list[tuple[int, dict[str, str] | str]], tuple[str, ...]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"{name}, line 1: cannot read the header row ({exc}).") from None
    columns = [column.strip().lower() for column in header]
    if "prompt" not in columns:
        found = ", ".join(repr(c) for c in header) or "none"
        separator = "tab" if delimiter == "\t" else "comma"
        raise InputError(
            f"{name}, line 1: no 'prompt' column (found {found}). The first row must name the columns, "
            f"separated by {separator}s, and one of them must be 'prompt'; 'target' and 'continuation' are optional."
        )
    ignored = tuple(header[i] for i, c in enumerate(columns) if c not in ("prompt", *OPTIONAL_COLUMNS) and c)
    rows: list[tuple[int, dict[str, str] | str]] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"{name}, line {start}: {exc}. Check the quotes on that line.") from None
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            rows.append((start, "blank row"))
            continue
        if len(record) > len(columns):
            rows.append((start, f"{len(record)} cells but the header names {len(columns)} columns (unquoted separator?)"))
            continue
        rows.append((start, {columns[i]: cell for i, cell in enumerate(record)}))
    return rows, ignored


def _read_jsonl(name: str, text: str) -> list[tuple[int, dict[str, str] | str]]:
    rows: list[tuple[int, dict[str, str] | str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            rows.append((number, "blank line"))
            continue
        record = json_object(name, number, raw)
        if "prompt" not in record:
            keys = ", ".join(repr(k) for k in record) or "none"
            raise InputError(f"{name}, line {number}: no 'prompt' field (found {keys}).")
        bad = [k for k in ("prompt", *OPTIONAL_COLUMNS) if k in record and not isinstance(record[k], str | type(None))]
        if bad:
            rows.append((number, f"field '{bad[0]}' must be a string"))
            continue
        rows.append((number, {k: record.get(k) or "" for k in ("prompt", *OPTIONAL_COLUMNS)}))
    return rows


def _read_txt(text: str) -> list[tuple[int, dict[str, str] | str]]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline is not a row
    return [(n, {"prompt": line} if line.strip() else "blank line") for n, line in enumerate(lines, start=1)]
