"""Writing results for spreadsheets and other programs."""

from __future__ import annotations

import io

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula (CSV injection) with a quote.

    Numbers are left alone: only strings starting with ``= + - @`` (or a tab / carriage return)
    are changed, so a prompt like ``=HYPERLINK(...)`` shows as text when the CSV is opened.
    """
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return safe


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    spreadsheet_safe(frame).to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")
