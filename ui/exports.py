"""Download buttons for figures and tables, generated only when clicked."""

from __future__ import annotations

import io
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula (CSV injection) with a quote."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object:
            safe[column] = safe[column].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return safe


def csv_download(make_frame: Callable[[], pd.DataFrame], file_name: str, label: str) -> None:
    def data() -> bytes:
        buffer = io.StringIO()
        spreadsheet_safe(make_frame()).to_csv(buffer, index=False)
        return buffer.getvalue().encode()

    st.download_button(label, data=data, file_name=file_name, mime="text/csv", on_click="ignore", icon=":material/download:")


def figure_downloads(figure: go.Figure, stem: str) -> None:
    """An interactive HTML download (plotly.js inlined, works offline). PNG: the chart's camera button."""
    st.download_button(
        "Download figure (interactive HTML)",
        data=lambda: figure.to_html(include_plotlyjs=True, full_html=True).encode(),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
    )
    st.caption("For a PNG, use the camera button at the chart's top right.")
