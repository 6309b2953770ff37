"""What the server measures: Prometheus metrics at ``/metrics`` and the recent requests at ``/v1/steerscope/recent``.

Each app has its own :class:`prometheus_client.CollectorRegistry` (not the process-wide one), so tests, several
apps in one process and Ray Serve replicas never count into each other. The names (the Serving page reads them):

* ``requests_total{route,status}`` and ``errors_total{route,code}`` (code: the HTTP status of the error);
* ``time_to_first_token_seconds`` (histogram: from admission to the first token, what a caller waits);
* ``token_latency_seconds`` (histogram: seconds between consecutive tokens of one sample);
* ``tokens_generated_total`` (its rate is tokens/s) and ``tokens_per_second`` (gauge: the last 10 s);
* ``queue_depth`` (requests waiting in the engine), ``batch_rows`` (rows decoding together), ``requests_in_flight``
  (admitted by the server: waiting plus decoding, bounded by ``max_queue``);
* ``steering_vector_requests_total{vector}`` (requests that used each library vector).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any

ROUTES = (
    "/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/vectors", "/metrics", "/health", "/v1/steerscope/recent",
)  # fmt: skip
OTHER_ROUTE = "other"  # any other path: one label, so random URLs cannot grow the metric without bound
RATE_WINDOW_SECONDS = 10.0
RECENT_REQUESTS = 200
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def route_label(path: str) -> str:
    if path in ROUTES or path == "/v1/feedback":
        return path
    if path == "/v1/experiments" or path.startswith("/v1/experiments/"):
        return "/v1/experiments"  # one label for every experiment's summary
    return OTHER_ROUTE


@dataclasses.dataclass(frozen=True)
class RecentRequest:
    """One finished generation request, as the Serving page's table shows it."""

    time: float  # seconds since the epoch, when it finished
    route: str
    model: str
    vectors: tuple[str, ...]
    tokens: int
    ttft_seconds: float | None
    seconds: float
    status: int
    experiment: str | None = None
    arm: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"vectors": list(self.vectors)}


class ServerMetrics:
    """The app's metrics and its bounded list of recent requests. Thread-safe (prometheus_client's types are)."""

    def __init__(self, *, recent: int = RECENT_REQUESTS) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=r)
        self.errors = Counter("errors", "Error responses, by route and HTTP status code.", ["route", "code"], registry=r)
        self.first_token = Histogram(
            "time_to_first_token_seconds", "Seconds from admission to the first token.", buckets=FIRST_TOKEN_BUCKETS, registry=r
        )
        self.token_latency = Histogram(
            "token_latency_seconds", "Seconds between consecutive tokens of one sample.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens = Counter("tokens_generated", "Tokens generated (its rate is tokens/s).", registry=r)
        self.tokens_per_second = Gauge(
            "tokens_per_second", f"Tokens generated per second over the last {RATE_WINDOW_SECONDS:g} s.", registry=r
        )
        self.queue_depth = Gauge("queue_depth", "Requests waiting in the engine's queue.", registry=r)
        self.batch_rows = Gauge("batch_rows", "Rows decoding together in the engine's batch.", registry=r)
        self.in_flight = Gauge("requests_in_flight", "Generation requests admitted (waiting plus decoding).", registry=r)
        self.vector_requests = Counter("steering_vector_requests", "Requests that used each vector.", ["vector"], registry=r)
        self._recent: collections.deque[RecentRequest] = collections.deque(maxlen=recent)
        self._token_times: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    # -- recording ----------------------------------------------------------------------------------------------
    def answered(self, path: str, status: int) -> None:
        route = route_label(path)
        self.requests.labels(route=route, status=str(status)).inc()
        if status >= 400:
            self.errors.labels(route=route, code=str(status)).inc()

    def tokens_arrived(self, n: int, gaps: list[float]) -> None:
        if n <= 0:
            return
        self.tokens.inc(n)
        for gap in gaps:
            self.token_latency.observe(gap)
        with self._lock:
            self._token_times.append((time.monotonic(), n))

    def finished(self, entry: RecentRequest) -> None:
        if entry.ttft_seconds is not None:
            self.first_token.observe(entry.ttft_seconds)
        with self._lock:
            self._recent.append(entry)

    def used_vectors(self, names: list[str]) -> None:
        for name in dict.fromkeys(names):
            self.vector_requests.labels(vector=name).inc()

    # -- reading ------------------------------------------------------------------------------------------------
    def recent(self) -> list[RecentRequest]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def recent_tokens_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._token_times and self._token_times[0][0] < now - RATE_WINDOW_SECONDS:
                self._token_times.popleft()
            total = sum(n for _, n in self._token_times)
        return total / RATE_WINDOW_SECONDS

    def exposition(self, *, queued: int, rows: int, in_flight: int) -> bytes:
        """The Prometheus text format, with the gauges read now."""
        from prometheus_client import generate_latest

        self.queue_depth.set(queued)
        self.batch_rows.set(rows)
        self.in_flight.set(in_flight)
        self.tokens_per_second.set(self.recent_tokens_per_second())
        return generate_latest(self.registry)
