"""Small renderers for token-level views, and the escaping of user text: HTML-escaped and Markdown-escaped here, in one place."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import streamlit as st

# Characters that start markup anywhere in a line: code, emphasis, links and images, autolinks and HTML,
# tables, strikethrough, math, headings, entities. A backslash before ASCII punctuation makes it literal.
_INLINE = re.compile(r"([\\`*_\[\]<>|~$#&])")
_LINE_START = re.compile(r"^([ \t]*)([-+=])", re.MULTILINE)  # list items, setext underlines
_ORDERED = re.compile(r"^([ \t]*\d+)([.)])", re.MULTILINE)  # "1." and "1)" start ordered lists
# GFM finds bare URLs and e-mail addresses *after* escapes are resolved, so no backslash can stop them:
# an invisible word joiner inside "://" and "www." and after "@" does.
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i):(?=//)|www(?=\.)|@")


def md_escape(text: object) -> str:
    r"""User text made literal inside Streamlit markdown: st.error/warning/info/success, captions, labels, st.markdown.

    It reads exactly as typed (it adds only backslashes and invisible word joiners): no link, image,
    HTML, emphasis, list or heading can come from it, and a bare URL or address is not made clickable.

    Example:
        >>> md_escape("**bold** [x](y)")
        '\\*\\*bold\\*\\* \\[x\\](y)'
    """
    escaped = _INLINE.sub(r"\\\1", str(text))
    escaped = _ORDERED.sub(r"\1\\\2", escaped)
    escaped = _LINE_START.sub(r"\1\\\2", escaped)
    return _AUTOLINK.sub(lambda match: match.group(0) + WORD_JOINER, escaped)


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


def warn_unknown_text(model, text: str, what: str | None = None) -> None:
    """A warning when part of ``text`` is outside the model's vocabulary (read as its unknown token).

    ``what`` names the input when a page has several ("Reply", "Corrupted prompt").
    """
    from interp.errors import SteerscopeError
    from interp.tokens import unknown_tokens

    try:
        unknown = unknown_tokens(model, text)
    except SteerscopeError:
        return  # the page's own check says what is wrong with the text
    if unknown.n_unknown:
        message = unknown.message(model.info.name)
        st.warning(md_escape(f"{what}: {message}" if what else message))
