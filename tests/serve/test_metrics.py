"""``/metrics`` parses as Prometheus text and counts exactly what was sent; ``/v1/steerscope/recent`` lists it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serve.api import create_app
from serve.settings import ServerSettings
from tests.serve.conftest import running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(parsed, name: str, **labels) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_was_sent(tiny_llama, vector_library):
    app = create_app(tiny_llama, ServerSettings(), library=vector_library)  # its own registry: counts start at 0
    name = tiny_llama.info.name
    sent = [
        ("/v1/completions", {"prompt": "Hi there", "max_tokens": 5, "steering": [{"vector": "joy", "coefficient": 2}]}),
        ("/v1/completions", {"prompt": "Dogs are", "max_tokens": 7, "n": 2, "steering": [{"vector": "joy"}, {"vector": "calm"}]}),
        ("/v1/completions", {"prompt": "Cats", "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6}),
    ]
    tokens, token_gaps = 0, 0
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/v1/models").status_code == 200
        for path, body in sent:
            response = http.post(path, json={"model": name, "temperature": 0.9, "seed": 1, "ignore_eos": True, **body})
            assert response.status_code == 200, response.text
            if body.get("stream"):
                usage = next(line for line in response.text.splitlines() if '"usage"' in line)
                completion = httpx.Response(200, content=usage.removeprefix("data: ")).json()["usage"]["completion_tokens"]
            else:
                completion = response.json()["usage"]["completion_tokens"]
            assert completion == body["max_tokens"] * body.get("n", 1)  # ignore_eos: exactly as many as asked
            tokens += completion
            token_gaps += completion - body.get("n", 1)  # one gap between each two tokens of a sample
        assert (
            http.post("/v1/completions", json={"model": name, "prompt": "x", "steering": [{"vector": "nope"}]}).status_code == 404
        )
        assert http.post("/v1/chat/completions", json={"model": name}).status_code == 422
        assert http.post("/v1/completions", json={"model": "other", "prompt": "x"}).status_code == 404
        scraped = http.get("/metrics")
        recent = http.get("/v1/steerscope/recent").json()["data"]
    assert scraped.headers["content-type"].startswith("text/plain")
    parsed = samples(scraped.text)
    assert value(parsed, "requests_total", route="/v1/models", status="200") == 1
    assert value(parsed, "requests_total", route="/v1/completions", status="200") == 3
    assert value(parsed, "requests_total", route="/v1/chat/completions", status="200") == 1
    assert value(parsed, "requests_total", route="/v1/completions", status="404") == 2
    assert value(parsed, "requests_total", route="/v1/chat/completions", status="422") == 1
    assert value(parsed, "errors_total", route="/v1/completions", code="404") == 2
    assert value(parsed, "errors_total", route="/v1/chat/completions", code="422") == 1
    assert value(parsed, "errors_total", route="/v1/models", code="200") == 0
    assert value(parsed, "tokens_generated_total") == tokens
    assert value(parsed, "time_to_first_token_seconds_count") == len(sent)
    assert value(parsed, "token_latency_seconds_count") == token_gaps
    assert value(parsed, "steering_vector_requests_total", vector="joy") == 2
    assert value(parsed, "steering_vector_requests_total", vector="calm") == 1
    assert value(parsed, "queue_depth") == 0 and value(parsed, "batch_rows") == 0
    assert value(parsed, "requests_in_flight") == 0
    assert value(parsed, "tokens_per_second") > 0  # tokens arrived within the last 10 s
    # The recent list: the generations that ran, newest first
    assert [(r["route"], r["vectors"], r["tokens"], r["status"]) for r in recent] == [
        ("/v1/chat/completions", [], 6, 200),
        ("/v1/completions", [], 4, 200),
        ("/v1/completions", ["joy", "calm"], 14, 200),
        ("/v1/completions", ["joy"], 5, 200),
    ]
    assert all(r["model"] == name and r["ttft_seconds"] > 0 and r["seconds"] >= r["ttft_seconds"] for r in recent)


def test_separate_apps_count_separately(tiny_llama, vector_library):
    first = create_app(tiny_llama, ServerSettings(), library=vector_library)
    second = create_app(tiny_llama, ServerSettings(), library=vector_library)
    with running(first) as url:
        httpx.get(f"{url}/v1/models")
        httpx.get(f"{url}/v1/models")
    with running(second) as url:
        httpx.get(f"{url}/v1/models")
        parsed = samples(httpx.get(f"{url}/metrics").text)
    assert value(parsed, "requests_total", route="/v1/models", status="200") == 1
