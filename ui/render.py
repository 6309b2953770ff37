"""Small renderers for token-level views. All user text is HTML-escaped here, in one place."""

from __future__ import annotations

import html
from collections.abc import Sequence

import streamlit as st

MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:=")


def md_escape(text: str) -> str:
    """User text made literal inside Streamlit markdown (captions, labels, st.markdown)."""
    return "".join("\\" + ch if ch in MARKDOWN_SPECIALS else ch for ch in str(text))


def _colour(weight: float) -> str:
    """Diverging colour for a weight in [-1, 1]: purple for positive, orange for negative."""
    weight = max(-1.0, min(1.0, weight))
    if weight >= 0:
        return f"rgba(91, 75, 219, {0.08 + 0.8 * weight:.3f})"
    return f"rgba(230, 120, 20, {0.08 + 0.8 * -weight:.3f})"


def token_chips_html(labels: Sequence[str], weights: Sequence[float] | None = None, titles: Sequence[str] | None = None) -> str:
    """Tokens as coloured chips; ``weights`` in [-1, 1] set the colour, ``titles`` the hover text."""
    chips = []
    for i, label in enumerate(labels):
        background = _colour(weights[i]) if weights is not None else "#f1f0fb"
        title = html.escape(titles[i] if titles is not None else label, quote=True)
        dark = weights is not None and abs(weights[i]) > 0.6
        colour = "white" if dark else "#1d1d1f"
        chips.append(
            f'<span title="{title}" style="background:{background};color:{colour};padding:2px 4px;margin:1px;'
            f"border-radius:4px;display:inline-block;font-family:ui-monospace,monospace;font-size:0.9em;"
            f'white-space:pre">{html.escape(label)}</span>'
        )
    return '<div style="line-height:2.0">' + "".join(chips) + "</div>"


def token_chips(labels: Sequence[str], weights: Sequence[float] | None = None, titles: Sequence[str] | None = None) -> None:
    st.html(token_chips_html(labels, weights, titles))
