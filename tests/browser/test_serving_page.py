"""The Serving page in a real browser, watching a live test server: metrics charts, recent requests, the A/B table."""

from __future__ import annotations

import random

import httpx
import pytest

from serve.api import create_app
from serve.experiments import ExperimentBook
from serve.library import VectorLibrary
from serve.settings import ServerSettings
from tests.serve.conftest import random_vector, running

JOY = {"name": "joy", "steering": [{"vector": "joy", "coefficient": 4.0}]}


@pytest.fixture()
def live_server(tiny_llama, tmp_path):
    """A server over the tiny Llama with some traffic and an experiment with scripted feedback."""
    library = VectorLibrary(tmp_path / "vectors")
    library.save(random_vector(tiny_llama, (0, 1), seed=1), "joy")
    book = ExperimentBook(tmp_path / "experiments", automatic_scores=False)
    app = create_app(tiny_llama, ServerSettings(max_tokens=32), library=library, experiments=book)
    with running(app) as url:
        httpx.post(f"{url}/v1/experiments", json={"name": "joy-vs-plain", "arms": [{"name": "plain"}, JOY]}, timeout=30)
        for i in range(8):
            body = {"model": tiny_llama.info.name, "prompt": "When Mary", "max_tokens": 6, "temperature": 0}
            body |= {"experiment": "joy-vs-plain", "user": f"user-{i}"} if i % 2 else {"steering": [JOY["steering"][0]]}
            assert httpx.post(f"{url}/v1/completions", json=body, timeout=60).status_code == 200
        scripted = random.Random(0)
        for i in range(60):  # scripted feedback, recorded as the server would: enough for a verdict
            user = f"scripted-{i}"
            arm = book.assign("joy-vs-plain", user).name
            book.record_response(experiment="joy-vs-plain", arm=arm, response_id=f"s{i}", user=user, prompt="", text="")
            book.feedback(f"s{i}", thumb=scripted.random() < (0.75 if arm == "joy" else 0.45), score=scripted.gauss(3, 1))
        try:
            yield url
        finally:
            book.close()


def test_the_serving_page_shows_a_live_servers_metrics_and_ab_table(page, live_server, tmp_path):
    page.open("serving")
    tab = page.tab
    tab.get_by_text("Monitoring", exact=True).first.wait_for()
    refresh = tab.get_by_label("Refresh every N s (0 = off)")
    refresh.fill("0")  # no timed reruns while the test reads the page
    refresh.press("Enter")
    page.wait_idle()
    address = tab.get_by_label("Server URL")
    address.fill(live_server)
    address.press("Enter")
    page.wait_idle()
    tab.locator(".gtitle", has_text="Requests and errors by route").first.wait_for()
    for title in ("Latency (from the histograms)", "Throughput and load", "Vectors in use", "mean and 95% CI per arm"):
        tab.locator(".gtitle", has_text=title).first.wait_for()
    tab.get_by_text("Recent requests").wait_for()
    tab.get_by_text("thumbs-up rate is").first.wait_for()  # the test's sentence
    tables = tab.locator('[data-testid="stDataFrame"]')
    tables.nth(1).wait_for()  # the tables draw after the sentence above on a loaded machine (CI saw 0 at once)
    page.wait_idle()
    assert tables.count() == 2  # recent requests, the arms
    # Opened by its URL on a fresh server, the page still runs inside the app: its navigation and model picker
    navigation = tab.locator('[data-testid="stSidebarNav"]')
    assert navigation.get_by_text("Reward & RLHF").count() == 1, navigation.inner_text()
    assert tab.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).count() >= 1
    assert page.screenshot("serving", tmp_path).stat().st_size > 10_000
