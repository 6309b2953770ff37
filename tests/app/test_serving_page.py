"""The Serving page (AppTest) against a live test server: metrics, charts, recent requests and the A/B section;
and with no server, a clear message saying how to start one."""

from __future__ import annotations

import math

import httpx
import pandas as pd
import pytest

from interp.records import RunStore
from serve.api import create_app
from serve.experiments import MEASURE_NAMES, ExperimentBook
from serve.library import VectorLibrary
from serve.settings import ServerSettings
from tests.app.test_pages import open_page
from tests.serve.conftest import random_vector, running
from tests.streamlit_server import free_port
from ui.model import OTHER_CHOICE
from ui.serving_client import Histogram, cost_per_million_tokens

PAGE = "pages/serving.py"
EXPERIMENT = {
    "name": "page-test",
    "arms": [{"name": "plain"}, {"name": "joy", "steering": [{"vector": "joy", "coefficient": 4.0}]}],
}


@pytest.fixture(scope="module")
def live_server(tiny_llama, tmp_path_factory):
    """(URL, what was sent) for a server that has answered a few plain and experiment requests."""
    data = tmp_path_factory.mktemp("serving-page")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEERSCOPE_DATA", str(data))
        library = VectorLibrary(data / "vectors")
        library.save(random_vector(tiny_llama, (0, 1), seed=1), "joy")
        book = ExperimentBook(data / "experiments", model=tiny_llama, automatic_scores=False)
        app = create_app(tiny_llama, ServerSettings(max_tokens=32), library=library, experiments=book)
        with running(app) as url:
            assert httpx.post(f"{url}/v1/experiments", json=EXPERIMENT, timeout=30).status_code == 200
            sent = {"tokens": 0, "requests": 0, "arms": {"plain": 0, "joy": 0}}
            for i in range(6):
                body = {"model": tiny_llama.info.name, "prompt": "When Mary", "max_tokens": 3, "temperature": 0}
                if i % 3:
                    body |= {"experiment": "page-test", "user": f"user-{i}"}
                reply = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()
                sent["tokens"] += reply["usage"]["completion_tokens"]
                sent["requests"] += 1
                if "steerscope" in reply:
                    sent["arms"][reply["steerscope"]["arm"]] += 1
                    feedback = {"response_id": reply["steerscope"]["response_id"], "thumb": True}
                    assert httpx.post(f"{url}/v1/feedback", json=feedback, timeout=30).status_code == 200
            yield url, sent
        book.close()


def open_serving(tiny_llama_dir, url: str, **state):
    state = {"serving_refresh_seconds": 0, **state}  # no timer in these tests: each run is the test's own
    return open_page(PAGE, model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir), serving_url=url, **state)


def test_the_page_shows_the_live_servers_metrics_and_experiment(live_server, tiny_llama_dir, tiny_llama):
    url, sent = live_server
    app = open_serving(tiny_llama_dir, url)
    assert not app.exception and not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Tokens generated"] == f"{sent['tokens']:,}"
    assert len(app.get("plotly_chart")) == 5  # requests, latency, throughput, vectors, the arms
    recent, arms = app.dataframe[0].value, app.dataframe[1].value
    assert len(recent) == sent["requests"] and set(recent["route"]) == {"/v1/completions"}
    assert list(arms["arm"]) == ["plain", "joy"] and list(arms["setting"]) == ["unsteered", "joy ×4"]
    assert list(arms["responses"]) == [sent["arms"]["plain"], sent["arms"]["joy"]]
    assert list(arms["feedback"]) == list(arms["responses"])
    summary = httpx.get(f"{url}/v1/experiments/page-test", timeout=30).json()  # what the server computed, per arm
    for row, arm in zip(arms.to_dict("records"), summary["arms"], strict=True):
        for estimate in arm["estimates"]:
            label = MEASURE_NAMES[estimate["measure"]]
            for column, field in ((label, "mean"), (f"{label} 95% CI low", "low"), (f"{label} 95% CI high", "high")):
                shown, want = row[column], estimate[field]
                assert pd.isna(shown) if want is None else shown == pytest.approx(want, abs=5e-4), (column, shown, want)
        thumbs = row["thumbs-up rate 95% CI low"], row["thumbs-up rate"], row["thumbs-up rate 95% CI high"]
        assert thumbs[0] < thumbs[1] == 1.0 == thumbs[2]  # every response got a thumbs up: Wilson's interval is below 1
    assert any("Too little data" in m.value for m in app.markdown)  # four responses cannot decide anything
    app.button(key="serving_keep").click().run()
    assert not app.exception
    assert any("Kept as run" in s.value for s in app.success), [e.value for e in app.error]
    kept = RunStore().list(kind="ab_experiment")  # the server kept it in its records (this test process's data folder)
    assert len(kept) == 1 and kept[0].model_name == tiny_llama.info.name


def test_the_page_creates_an_experiment_from_the_librarys_vectors(live_server, tiny_llama_dir):
    url, _ = live_server
    app = open_serving(tiny_llama_dir, url)
    app.text_input(key="serving_new_name").input("created-on-page")
    app.button(key="serving_create").click().run()
    assert not app.exception
    assert any("created-on-page is running" in s.value for s in app.success), [e.value for e in app.error]
    listed = httpx.get(f"{url}/v1/experiments", timeout=30).json()["data"]
    created = next(e for e in listed if e["name"] == "created-on-page")
    assert created["arm_descriptions"] == ["unsteered", "joy ×3"]


def test_with_no_server_the_page_says_how_to_start_one(tiny_llama_dir):
    app = open_page(PAGE, model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir),
                    serving_url=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    assert not app.exception and not app.error
    assert app.number_input(key="serving_refresh_seconds").value == 5  # live by default: a refresh every 5 s
    assert any("No Steerscope server answers" in i.value and "make serve" in i.value for i in app.info)
    assert any(c.value == "make serve" for c in app.code)
    assert not app.get("plotly_chart")


def test_cost_per_million_tokens_and_histogram_quantiles_by_hand():
    assert cost_per_million_tokens(2.0, 50.0) == pytest.approx(2.0 / (50 * 3600) * 1e6)  # $11.11
    assert cost_per_million_tokens(2.0, 0.0) is None
    histogram = Histogram((0.1, 0.25, 1.0, math.inf), (2.0, 5.0, 5.0, 6.0), 1.4, 6.0)
    assert histogram.quantile(0.5) == pytest.approx(0.1 + (0.25 - 0.1) * (3 - 2) / (5 - 2))  # rank 3 in the 2nd bucket
    assert histogram.quantile(0.2) == pytest.approx(0.1 * 1.2 / 2)  # rank 1.2 in the first bucket, from 0
    assert histogram.quantile(0.99) == 1.0  # in +Inf: the top finite bound, as Prometheus says
    assert math.isnan(Histogram((math.inf,), (0.0,), 0.0, 0.0).quantile(0.5))
