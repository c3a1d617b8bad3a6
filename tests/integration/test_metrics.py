"""Prometheus metrics: what a daemon records about its runs, and the API's /metrics."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import timedelta

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from shared.metrics import DaemonMetrics
from shared.schedule import Schedule
from shared.settings import Settings
from tests.integration.api_helpers import api_client
from tests.support.daemons import settings_for, settle, started, webhook
from tests.support.jobs import db_now, insert_job
from tests.support.target import Target


async def test_finished_runs_are_counted_by_status_and_timed(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """One success, one retry to come and one final failure: each status counts
    one, and every claimed run is in the lag and duration histograms."""
    now = await db_now(db)
    every_minute = Schedule(kind="interval", interval_seconds=60, start_at=now)
    await insert_job(db, schedule=every_minute, action=webhook(target.url("/ok")))
    await insert_job(
        db,
        schedule=every_minute,
        action=webhook(target.url("/status/500")),
        max_retries=1,
    )
    await insert_job(
        db, schedule=every_minute, action=webhook(target.url("/status/404"))
    )

    async with started(settings_for(database_url)) as worker:
        await worker.run_once()
        await settle(worker)
        sample = worker.metrics.registry.get_sample_value

        for status in ("SUCCEEDED", "RETRYING", "FAILED"):
            labels = {"status": status}
            assert sample("tickwork_runs_finished_total", labels) == 1, status
        assert sample("tickwork_runs_finished_total", {"status": "ABANDONED"}) == 0
        assert sample("tickwork_run_duration_seconds_count") == 3
        assert sample("tickwork_run_start_lag_seconds_count") == 3
        assert sample("tickwork_claim_batch_size_count") == 1
        assert sample("tickwork_claim_batch_size_sum") == 3
        assert sample("tickwork_runs_in_flight") == 0


async def test_the_lag_and_the_oldest_overdue_run_follow_the_due_times(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """With one slot, the run due 45 s ago starts about 45 s late, and the heartbeat
    reports the one due 30 s ago, still waiting, as the oldest overdue."""
    now = await db_now(db)
    for late in (45, 30):
        due = now - timedelta(seconds=late)
        await insert_job(
            db,
            schedule=Schedule(kind="at", at=due),
            action=webhook(target.url("/ok")),
            next_run_at=due,
        )

    async with started(settings_for(database_url, concurrency=1)) as worker:
        await worker.run_once()
        await worker.beat()
        await settle(worker)
        sample = worker.metrics.registry.get_sample_value

        assert sample("tickwork_run_start_lag_seconds_count") == 1
        assert 45 <= (sample("tickwork_run_start_lag_seconds_sum") or 0) < 60
        assert 30 <= (sample("tickwork_oldest_overdue_seconds") or 0) < 45


async def test_a_daemon_serves_its_metrics_over_http_on_a_port_of_its_own(
    database_url: str,
) -> None:
    """Two daemons in one process keep separate registries; port 0 takes a free
    port and the endpoint answers in the text format."""
    async with started(settings_for(database_url)) as first:
        second = DaemonMetrics()
        first.metrics.abandoned()
        server = first.metrics.serve("127.0.0.1", 0)
        try:
            url = f"http://127.0.0.1:{server.port}/metrics"
            text = await asyncio.to_thread(_read, url)
        finally:
            server.close()

    assert 'tickwork_runs_finished_total{status="ABANDONED"} 1.0' in text
    assert "# HELP tickwork_oldest_overdue_seconds" in text
    abandoned = {"status": "ABANDONED"}
    assert (
        second.registry.get_sample_value("tickwork_runs_finished_total", abandoned) == 0
    )


def test_the_api_serves_its_request_and_subscriber_metrics(database_url: str) -> None:
    """GET /metrics lists requests by route template, method and status, and the
    subscriber gauge, in the Prometheus text format."""
    with api_client(database_url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/graphql", params={"query": "{ __typename }"}).is_success
        response = client.get("/metrics")

    text = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# HELP tickwork_http_requests_total" in text
    assert (
        'tickwork_http_requests_total{method="GET",route="/healthz",status="200"} 1.0'
    ) in text
    assert 'route="/graphql"' in text
    assert "tickwork_http_request_duration_seconds_bucket" in text
    assert "tickwork_subscribers 0.0" in text


def test_paths_are_labelled_by_route_template_never_raw(database_url: str) -> None:
    """A path served by no API route counts under the static mount's template or
    as `unmatched`, so probing random paths cannot add time series."""
    settings = Settings(database_url=database_url, env="production")
    with TestClient(create_app(settings)) as client:
        client.get("/docs/does-not-exist")
        text = client.get("/metrics").text

    assert "does-not-exist" not in text


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()
