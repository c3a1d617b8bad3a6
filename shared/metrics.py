"""Prometheus metrics of the daemon and the API, one registry per process object.

Each :class:`DaemonMetrics` or :class:`ApiMetrics` owns its own
``CollectorRegistry`` rather than the library's global one, so that tests can
build several daemons or apps in one process without names clashing. The
exposition format is the client library's; nothing here writes it by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Runs are HTTP requests bounded by a job's timeout: milliseconds to minutes.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Lag is near zero when daemons keep up; minutes or hours mean a backlog or a
# takeover after a daemon died.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# A claim takes at most TICKWORK_CLAIM_BATCH (200 at most) runs.
BATCH_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

RUN_STATUSES = ("SUCCEEDED", "RETRYING", "FAILED", "ABANDONED")

# The label for requests that matched no route, so that scanners probing random
# paths cannot create a time series per path.
UNMATCHED = "unmatched"


class DaemonMetrics:
    """What one daemon measures about its runs, claims and backlog."""

    def __init__(self, in_flight: Callable[[], float] | None = None) -> None:
        """``in_flight`` returns the daemon's runs in flight when scraped."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs_finished = Counter(
            "tickwork_runs_finished",
            "Attempts this daemon finished, by the status they leave the execution "
            "in: SUCCEEDED, RETRYING (a retry follows), FAILED (final), or "
            "ABANDONED (lost lease, cancelled or handed back on shutdown).",
            ["status"],
            registry=self.registry,
        )
        # Every status from zero, so that rates work before its first run.
        for status in RUN_STATUSES:
            self.runs_finished.labels(status=status)
        self.start_lag = Histogram(
            "tickwork_run_start_lag_seconds",
            "Seconds from an execution's due time (run_at: its fire time plus "
            "jitter, or its retry time) to the start of the attempt, by the "
            "database clock.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "tickwork_run_duration_seconds",
            "Seconds an attempt took, from its start to its outcome.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(
            "tickwork_runs_in_flight",
            "Runs this daemon is performing now.",
            registry=self.registry,
        )
        if in_flight is not None:
            self.runs_in_flight.set_function(in_flight)
        self.claim_batch = Histogram(
            "tickwork_claim_batch_size",
            "Runs taken by each claim statement, zero included.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.oldest_overdue = Gauge(
            "tickwork_oldest_overdue_seconds",
            "Seconds since the due time of the oldest execution waiting to start "
            "(PENDING or RETRYING), 0 when none is overdue. Read from the database "
            "at each heartbeat, so every daemon reports the same backlog.",
            registry=self.registry,
        )

    def claimed(self, started: Iterable[tuple[datetime | None, datetime]]) -> None:
        """Record one claim statement: ``(run_at, started_at)`` of each claim."""
        count = 0
        for run_at, started_at in started:
            count += 1
            if run_at is not None:
                lag = (started_at - run_at).total_seconds()
                self.start_lag.observe(max(lag, 0.0))
        self.claim_batch.observe(count)

    def finished(self, status: str, duration: float) -> None:
        """Record an attempt that reached an outcome."""
        self.runs_finished.labels(status=status).inc()
        self.run_duration.observe(duration)

    def abandoned(self) -> None:
        """Record an attempt stopped before its outcome; it has no duration."""
        self.runs_finished.labels(status="ABANDONED").inc()

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve this registry over HTTP on ``host:port`` in a background thread.

        Port 0 takes a free port; :attr:`MetricsServer.port` says which.
        Raises OSError when the address cannot be bound.
        """
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)


class MetricsServer:
    """The daemon's metrics endpoint, running in a thread until :meth:`close`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class ApiMetrics:
    """What one API process measures about its own requests and subscribers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tickwork_http_requests",
            "HTTP requests this API process answered, by route template, method "
            "and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "tickwork_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer, by route "
            "template.",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "tickwork_subscribers",
            "GraphQL subscriptions to execution updates open on this process.",
            registry=self.registry,
        )

    def count_subscribers(self, count: Callable[[], float]) -> None:
        """Read the subscribers gauge from ``count`` at each scrape."""
        self.subscribers.set_function(count)

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_duration.labels(route=route).observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics: this registry in the format the scraper asks for."""
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(self.registry), headers={"Content-Type": content_type})


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by the route that handled it.

    A plain ASGI middleware: WebSocket connections pass through untouched
    (their subscriptions show in the subscribers gauge), and streamed answers
    are timed to their last byte.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        began = time.perf_counter()
        # An exception with no answer sent becomes a 500 further out.
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.answered(
                _route_label(scope),
                scope["method"],
                status,
                time.perf_counter() - began,
            )


def _route_label(scope: dict[str, Any]) -> str:
    """The template of the route that took the request (the router records it
    in the scope), never the raw path."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    return path
