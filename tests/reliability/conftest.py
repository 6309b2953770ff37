"""The app as a user meets it, for the reliability suite: opened through app.py, on a tiny model."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from ui.model import OTHER_CHOICE
from ui.render import WORD_JOINER

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")

# What someone might paste into a prompt, a path or a file name to make the page fetch or link elsewhere.
PAYLOADS = (
    "[link](http://evil.example/x)",
    "![x](http://evil.example/i.png)",
    "<img src=http://evil.example/i.png>",
    "<script>alert(1)</script>",
)

# CommonMark plus the GFM parts Streamlit's Markdown has; markdown-it does not run GFM's second pass over
# bare URLs, so :func:`assert_inert` checks the text it leaves for them itself.
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
ACTIVE = {"link_open", "image", "html_inline", "html_block"}


@pytest.fixture()
def served(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make AppTest run app.py on every rerun, as the server does.

    AppTest resets Streamlit's legacy "pages/ folder" flag before each run, so after the first run it
    runs a page of an st.navigation app on its own, without app.py, its sidebar or its page boundary.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture()
def tiny(tiny_llama_dir: Path) -> dict[str, str]:
    """Sidebar state that picks the tiny test checkpoint, like a user typing its folder."""
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


def open_page(path: str | None = None, **state: str) -> AppTest:
    """The app opened with ``state`` set (the sidebar's choices), then switched to ``path``."""
    app = AppTest.from_file(APP, default_timeout=120)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    if path is not None:
        app.switch_page(path).run()
    assert not app.exception, app.exception
    return app


def markdown_bodies(app: AppTest) -> list[str]:
    """The Markdown source of everything on the page (sidebar included) that Streamlit renders as Markdown."""
    bodies = [
        element.value
        for kind in ("error", "warning", "info", "success", "caption", "markdown", "subheader", "title")
        for element in getattr(app, kind)
    ]
    bodies += [element.label for kind in ("metric", "expander") for element in getattr(app, kind)]
    return bodies


def visible_text(body: str) -> str:
    """What a reader sees of a Markdown body: tags dropped, entities and escapes resolved, word joiners removed."""
    rendered = MARKDOWN.render(body)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace(WORD_JOINER, "")


def assert_inert(body: str) -> None:
    """``body`` renders no link, image or HTML, and leaves no bare URL for GFM's autolinker to find."""
    tokens = [t for block in MARKDOWN.parse(body) for t in (block, *(block.children or ()))]
    active = {t.type for t in tokens} & ACTIVE
    assert not active, f"{sorted(active)} from {body!r}"
    assert not re.search(r"(?<!\\)\]\(|(?<!\\)<(img|script)", body), body
    text = html.unescape(re.sub(r"<[^>]+>", "", MARKDOWN.render(body)))  # word joiners kept: they are what stops GFM
    assert not re.search(r"(?i)https?://|www\.|[\w.+-]+@[\w-]+\.\w", text), body


def assert_shown_inert(app: AppTest, payload: str) -> None:
    """The page shows ``payload`` back, as typed, and nothing it shows renders as a link, an image or HTML."""
    bodies = markdown_bodies(app)
    assert any(payload in visible_text(body) for body in bodies), bodies
    for body in bodies:
        assert_inert(body)


def assert_no_traceback(app: AppTest) -> None:
    assert not app.exception, app.exception
    everything = markdown_bodies(app) + [code.value for code in app.code]
    assert not any("Traceback" in text or 'File "' in text for text in everything), everything


@pytest.fixture()
def run_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The app's run store, kept in this test's own folder."""
    from ui.records import run_store as app_run_store

    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    app_run_store.clear()
    yield app_run_store
    app_run_store.clear()
