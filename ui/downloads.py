"""Download buttons for figures and tables, generated only when clicked."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from interp.spreadsheet import to_csv_bytes


def csv_download(make_frame: Callable[[], pd.DataFrame], file_name: str, label: str) -> None:
    st.download_button(
        label,
        data=lambda: to_csv_bytes(make_frame()),
        file_name=file_name,
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
    )


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


def json_download(make_text: Callable[[], str], file_name: str, label: str) -> None:
    st.download_button(
        label,
        data=lambda: make_text().encode("utf-8"),
        file_name=file_name,
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
    )
