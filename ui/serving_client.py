"""The Serving page's side of the server: fetch ``/metrics`` and ``/v1/steerscope/recent``, parse them, draw them.

The page never talks HTTP or parses Prometheus text itself. :func:`fetch_snapshot` reads one moment of the
server into a :class:`ServerSnapshot`; histogram quantiles are computed the way Prometheus's
``histogram_quantile`` does (linear inside the bucket the rank falls in), so the page agrees with a Grafana panel
on the same metrics. Failures become :class:`ServerUnreachable` or :class:`ServerRefused` with a message saying
what to do (start the server with ``make serve``, give the API key), never a traceback.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import plotly.graph_objects as go

from interp.errors import SteerscopeError

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 60.0  # keeping an experiment writes a run record (MLflow): slower than a read, and worth the wait
QUANTILES = (0.5, 0.9, 0.99)


class ServerUnreachable(SteerscopeError):
    """No server answered at the URL."""


class ServerRefused(SteerscopeError):
    """The server answered with an error (its OpenAI-shaped message is the text)."""


@dataclasses.dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative counts at each upper bound (``+Inf`` last), their sum and count."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    total: float
    count: float

    def quantile(self, q: float) -> float:
        """Prometheus's ``histogram_quantile``: NaN with no observations; the top finite bound if it lies above."""
        if self.count <= 0 or not self.bounds:
            return math.nan
        rank = q * self.count
        previous_bound, previous_count = 0.0, 0.0
        for bound, count in zip(self.bounds, self.cumulative, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return previous_bound
                if count == previous_count:
                    return bound
                return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
            previous_bound, previous_count = bound, count
        return previous_bound

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclasses.dataclass(frozen=True)
class ServerSnapshot:
    """What the server's ``/metrics`` said at one moment."""

    requests: tuple[tuple[str, str, float], ...]  # (route, status, count)
    errors: tuple[tuple[str, str, float], ...]  # (route, code, count)
    first_token: Histogram
    token_latency: Histogram
    tokens_generated: float
    tokens_per_second: float
    queue_depth: float
    batch_rows: float
    in_flight: float
    vectors: tuple[tuple[str, float], ...]  # (vector, requests)


def parse_metrics(text: str) -> ServerSnapshot:
    """A snapshot from Prometheus text (the format ``prometheus_client`` writes)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except ValueError as error:
        raise ServerRefused(f"The server's /metrics is not Prometheus text ({error}); is this a Steerscope server?") from None

    def one(name: str) -> float:
        values = samples.get(name, [])
        return values[0][1] if values else 0.0

    def histogram(name: str) -> Histogram:
        buckets = sorted((float(labels["le"]), value) for labels, value in samples.get(f"{name}_bucket", []))
        return Histogram(tuple(b for b, _ in buckets), tuple(c for _, c in buckets), one(f"{name}_sum"), one(f"{name}_count"))

    return ServerSnapshot(
        requests=tuple(sorted((s["route"], s["status"], v) for s, v in samples.get("requests_total", []))),
        errors=tuple(sorted((s["route"], s["code"], v) for s, v in samples.get("errors_total", []))),
        first_token=histogram("time_to_first_token_seconds"),
        token_latency=histogram("token_latency_seconds"),
        tokens_generated=one("tokens_generated_total"),
        tokens_per_second=one("tokens_per_second"),
        queue_depth=one("queue_depth"),
        batch_rows=one("batch_rows"),
        in_flight=one("requests_in_flight"),
        vectors=tuple(
            sorted(((s["vector"], v) for s, v in samples.get("steering_vector_requests_total", [])), key=lambda x: -x[1])
        ),
    )


def cost_per_million_tokens(price_per_hour: float, tokens_per_second: float) -> float | None:
    """Dollars per 1M generated tokens: the machine's price per hour over the tokens it makes in an hour.

    None while nothing is generated (the cost per token of an idle machine is not a number)."""
    if not tokens_per_second > 0 or not math.isfinite(price_per_hour) or price_per_hour < 0:
        return None
    return price_per_hour / (tokens_per_second * 3600) * 1e6


# -- HTTP ---------------------------------------------------------------------------------------------------------


class ServerClient:
    """A few calls to one server (``url`` like ``http://127.0.0.1:8000``, optional API key)."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str = "", timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = (url or DEFAULT_URL).strip().rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float | None = None) -> Any:
        import httpx

        if not self.url.startswith(("http://", "https://")):
            raise ServerUnreachable(f"The server URL must start with http:// or https:// (got {self.url[:80]!r}).")
        timeout = self.timeout if timeout is None else timeout
        try:
            response = httpx.request(method, self.url + path, json=body, headers=self.headers, timeout=timeout)
        except httpx.TimeoutException:
            raise ServerUnreachable(
                f"The server at {self.url} did not answer within {timeout:g} s; it may be busy. Try again in a moment."
            ) from None
        except (httpx.HTTPError, OSError, ValueError):
            raise ServerUnreachable(
                f"No Steerscope server answers at {self.url}. Start one with `make serve` (it listens on {DEFAULT_URL}), "
                "or fix the URL."
            ) from None
        if response.status_code >= 400:
            raise ServerRefused(_error_message(response))
        return response.text if path == "/metrics" else response.json()

    def snapshot(self) -> ServerSnapshot:
        return parse_metrics(self._call("GET", "/metrics"))

    def recent(self) -> list[dict]:
        return list(self._call("GET", "/v1/steerscope/recent").get("data", []))

    def vectors(self) -> list[str]:
        return [v["id"] for v in self._call("GET", "/v1/vectors").get("data", [])]

    def experiments(self) -> list[dict]:
        return list(self._call("GET", "/v1/experiments").get("data", []))

    def summary(self, name: str) -> dict:
        import urllib.parse

        return self._call("GET", f"/v1/experiments/{urllib.parse.quote(name, safe='')}")

    def create_experiment(self, body: dict) -> dict:
        return self._call("POST", "/v1/experiments", body, timeout=max(self.timeout, WRITE_TIMEOUT_SECONDS))

    def keep(self, name: str, note: str = "") -> str:
        import urllib.parse

        path = f"/v1/experiments/{urllib.parse.quote(name, safe='')}/keep"
        return self._call("POST", path, {"note": note}, timeout=max(self.timeout, WRITE_TIMEOUT_SECONDS))["run_id"]


def _error_message(response: Any) -> str:
    if response.status_code == 401:
        return "The server wants an API key: type the one it was started with (STEERSCOPE_API_KEY)."
    if response.status_code == 404 and "/v1/experiments" in str(response.request.url):
        return "This server runs no A/B experiments (it was started without an experiment book)."
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code}."


def arm_body(name: str, vector: str | None, coefficient: float) -> dict:
    """One arm of ``POST /v1/experiments``: unsteered when ``vector`` is None."""
    return {"name": name, "steering": [] if vector is None else [{"vector": vector, "coefficient": coefficient}]}


# -- figures ------------------------------------------------------------------------------------------------------


def requests_figure(snapshot: ServerSnapshot) -> go.Figure:
    """Requests and errors by route (bars)."""
    routes = sorted({r for r, _, _ in snapshot.requests})
    total = [sum(v for r, _, v in snapshot.requests if r == route) for route in routes]
    errors = [sum(v for r, _, v in snapshot.errors if r == route) for route in routes]
    figure = go.Figure([go.Bar(name="requests", x=routes, y=total), go.Bar(name="errors", x=routes, y=errors)])
    return figure.update_layout(title="Requests and errors by route", barmode="group", yaxis_title="count", height=320)


def latency_figure(snapshot: ServerSnapshot) -> go.Figure:
    """Time to first token and per-token latency at p50/p90/p99, in milliseconds."""
    names = [f"p{round(q * 100)}" for q in QUANTILES]
    figure = go.Figure(
        [
            go.Bar(name="time to first token", x=names, y=[1000 * snapshot.first_token.quantile(q) for q in QUANTILES]),
            go.Bar(name="per-token latency", x=names, y=[1000 * snapshot.token_latency.quantile(q) for q in QUANTILES]),
        ]
    )
    return figure.update_layout(title="Latency (from the histograms)", barmode="group", yaxis_title="ms", height=320)


def history_figure(history: list[dict]) -> go.Figure:
    """Tokens/s, queue depth and batch rows over the page's refreshes."""
    times = [h["time"] for h in history]
    figure = go.Figure()
    for key, label in (("tokens_per_second", "tokens/s"), ("queue_depth", "queue depth"), ("batch_rows", "batch rows")):
        figure.add_trace(go.Scatter(x=times, y=[h[key] for h in history], name=label, mode="lines+markers"))
    return figure.update_layout(title="Throughput and load", xaxis_title="time", height=320)


def vectors_figure(snapshot: ServerSnapshot) -> go.Figure:
    figure = go.Figure(go.Bar(x=[v for v, _ in snapshot.vectors], y=[n for _, n in snapshot.vectors]))
    return figure.update_layout(title="Vectors in use (requests)", yaxis_title="requests", height=320)


def arms_figure(summary: dict, measure: str) -> go.Figure:
    """Each arm's mean (or thumbs-up rate) on ``measure`` with its 95% interval as error bars."""
    names, means, plus, minus = [], [], [], []
    for arm in summary["arms"]:
        estimate = next(e for e in arm["estimates"] if e["measure"] == measure)
        mean = estimate["mean"]
        names.append(f"{arm['name']} ({arm['description']})")
        means.append(mean)
        plus.append(None if estimate["high"] is None or mean is None else estimate["high"] - mean)
        minus.append(None if estimate["low"] is None or mean is None else mean - estimate["low"])
    bar = go.Bar(x=names, y=means, error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True})
    return go.Figure(bar).update_layout(title=f"{measure}: mean and 95% CI per arm", height=340)
