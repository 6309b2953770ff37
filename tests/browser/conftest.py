"""A real browser against the real app: start `streamlit run app.py`, drive it with Playwright.

Debian's Chromium (`/usr/bin/chromium`) is the browser; Playwright never downloads its own. The
app binds to 127.0.0.1 on a free port. Every request the page makes is recorded, so tests can
assert that nothing left this machine. Set STEERSCOPE_SCREENSHOTS=docs/img to refresh the docs'
screenshots from these runs (`make screenshots`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.streamlit_server import free_port, streamlit_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("STEERSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # this machine has no network; keep Chromium from trying
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "streamlit.log"
    data = tmp_path_factory.mktemp("data")  # kept runs go here, not into the checkout
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", STEERSCOPE_DATA=str(data))
    flags = ("--server.address", "127.0.0.1")
    with streamlit_server(ROOT / "app.py", cwd=ROOT, env=env, log=log_path, port=port, flags=flags):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium (apt-get install chromium).")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Page:
    """A browser tab on the app that remembers every host it contacted."""

    def __init__(self, tab, base_url: str) -> None:
        self.tab = tab
        self.base_url = base_url
        self.foreign_requests: list[str] = []
        tab.on("request", self._record)

    def _record(self, request) -> None:
        host = urlparse(request.url).hostname
        if request.url.startswith(("data:", "blob:", "about:")) or host in {"127.0.0.1", "localhost"}:
            return
        self.foreign_requests.append(request.url)

    def open(self, path: str = "") -> None:
        self.tab.goto(f"{self.base_url}/{path}", wait_until="domcontentloaded")
        self.wait_idle()

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Wait until Streamlit has finished running the script."""
        self.tab.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
        self.tab.wait_for_timeout(400)
        # The app root carries the script's run state (Streamlit's own e2e tests wait on it); the
        # status widget alone can be absent for a moment between queued reruns.
        self.tab.wait_for_function(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                return app && app.getAttribute('data-test-script-state') === 'notRunning'
                    && !document.querySelector('[data-testid="stStatusWidget"]');
            }""",
            timeout=timeout_s * 1000,
        )

    def screenshot(self, name: str, tmp_dir: Path) -> Path:
        target_dir = Path(os.environ.get("STEERSCOPE_SCREENSHOTS") or tmp_dir)
        target_dir = target_dir if target_dir.is_absolute() else ROOT / target_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        path = target_dir / f"{name}.png"
        # Streamlit scrolls inside its main container, so a "full page" shot is one viewport:
        # grow the viewport to the content's height (capped) for the picture, then restore it.
        viewport = self.tab.viewport_size
        height = self.tab.evaluate(
            "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.scrollHeight : 0; }"
        )
        self.tab.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), 3200)})
        self.tab.wait_for_timeout(600)
        # A picture of a page mid-run shows faded, stale parts: let the script finish first. Plotly's
        # code loads lazily (a grey skeleton stands in meanwhile) and charts draw only once visible:
        # wait until no skeleton is left and every chart has its SVG.
        self.wait_idle()
        self.tab.wait_for_function(
            """() => !document.querySelector('[data-testid="stSkeleton"]') &&
                [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))""",
            timeout=30_000,
        )
        self.tab.wait_for_timeout(400)
        self.tab.screenshot(path=str(path))
        self.tab.set_viewport_size(viewport)
        return path


@pytest.fixture()
def page(browser, app_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 950}, device_scale_factor=1)
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    wrapped = Page(tab, app_url)
    yield wrapped
    context.close()
    assert wrapped.foreign_requests == [], f"the app contacted other hosts: {wrapped.foreign_requests[:5]}"
