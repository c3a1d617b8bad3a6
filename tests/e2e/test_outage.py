"""PostgreSQL restarted under load: the API and daemons ride it out by themselves.

The test runs its own cluster (never the shared test server), so it can stop
it: `tickwork api` and two `tickwork daemon`s work against it while interval
jobs fire and slow runs are in flight, then PostgreSQL stops for a few seconds
and starts again on the same port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import websockets
from cryptography.fernet import Fernet

from shared.migrate import upgrade
from tests.support.cluster import Cluster
from tests.support.processes import Tickwork, poll
from tests.support.target import Target

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 5.0
INTERVAL_JOBS = 20
SLOW_RUNS = 4

CREATE = """
mutation Create($input: CreateJobInput!) {
  createJob(input: $input) { __typename ... on Job { id } }
}
"""
JOBS = "{ jobs(first: 5) { edges { node { id name } } } }"


@dataclass
class Subscription:
    """An executionUpdates subscription over graphql-transport-ws, in a thread."""

    url: str
    token: str
    updates: list[tuple[float, dict]] = field(default_factory=list)
    ended: str | None = None  # why the subscription or its socket ended
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(10):
            raise AssertionError(f"the subscription did not start: {self.ended}")

    def updates_since(self, moment: float) -> list[dict]:
        return [update for at, update in list(self.updates) if at >= moment]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)

    def _run(self) -> None:
        self._task = self._loop.create_task(self._listen())
        try:
            self._loop.run_until_complete(self._task)
        except BaseException as exc:  # the test asserts on `ended`
            self.ended = self.ended or repr(exc)

    async def _listen(self) -> None:
        async with websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"]
        ) as ws:
            init = {"type": "connection_init", "payload": {"token": self.token}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = "subscription { executionUpdates { id jobId status } }"
            await ws.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": query}}
                )
            )
            self.ready.set()
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "next":
                    update = event["payload"]["data"]["executionUpdates"]
                    self.updates.append((time.monotonic(), update))
                elif event["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif event["type"] != "pong":
                    self.ended = f"server sent {event}"
                    return
            self.ended = "the server closed the socket"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def query(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def graphql_error(system: Tickwork) -> dict:
    response = httpx.post(
        f"{system.base_url}/graphql",
        json={"query": JOBS},
        headers=system.headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None, body
    [error] = body["errors"]
    assert "Traceback" not in response.text
    return error


def create_job(system: Tickwork, name: str, schedule: dict, url: str) -> str:
    job = system.graphql(
        CREATE,
        input={"name": name, "schedule": schedule, "action": {"webhook": {"url": url}}},
    )["createJob"]
    assert job["__typename"] == "Job", job
    return job["id"]


def test_a_postgres_restart_under_load_pauses_everything_and_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """PostgreSQL stops for 5 s while 20 interval jobs fire and 4 slow runs are in
    flight. Meanwhile /readyz is 503, GraphQL says "database unavailable" (in
    development and production) and a subscription stays open. Once it is back,
    the API is ready within seconds, the runs that finished during the outage
    are SUCCEEDED with one attempt each, deliveries and live updates resume,
    nothing is stuck RUNNING, no fire time is missed, and the same two daemon
    processes did it all, logging the outage once each."""
    query(cluster.url(), "CREATE DATABASE tickwork")
    url = cluster.url("tickwork")
    upgrade(url)
    # The lease outlasts the outage, so the results written afterwards count.
    system = Tickwork(url, tmp_path, lease_seconds="20", concurrency="16")
    (tmp_path / "production").mkdir()
    production = Tickwork(
        url,
        tmp_path / "production",
        env="production",
        secret_key=Fernet.generate_key().decode(),
    )
    api = system.start("api")
    daemons = [system.start("daemon"), system.start("daemon")]
    production.start("api")
    subscription = None
    try:
        system.wait_ready()
        production.wait_ready()
        subscription = Subscription(
            f"ws://127.0.0.1:{system.port}/graphql", system.token
        )
        subscription.start()

        with Target() as target:
            for i in range(INTERVAL_JOBS):
                create_job(
                    system, f"tick {i}", {"intervalSeconds": 2}, target.url("/ok")
                )
            slow_jobs = [
                create_job(
                    system,
                    f"slow {i}",
                    {"at": "2000-01-01T00:00:00Z"},
                    target.url(f"/slow/3/{i}"),
                )
                for i in range(SLOW_RUNS)
            ]
            # The slow runs are in flight: each answers 3 s after it arrived.
            poll(
                lambda: (
                    sum(r.path.startswith("/slow/") for r in target.requests)
                    == SLOW_RUNS
                ),
                timeout=10,
            )

            cluster.stop()
            back_at = time.monotonic() + OUTAGE_SECONDS

            ready = httpx.get(f"{system.base_url}/readyz", timeout=5)
            assert ready.status_code == 503, ready.text
            for tickwork in (system, production):
                error = graphql_error(tickwork)
                assert error["message"] == "database unavailable", error
                assert error["extensions"] == {"code": "DATABASE_UNAVAILABLE"}

            time.sleep(max(back_at - time.monotonic(), 0))
            assert subscription.ended is None, subscription.ended
            assert [d.poll() for d in daemons] == [None, None], "a daemon exited"
            cluster.start()
            restarted = time.monotonic()
            delivered_before = len(target.requests)

            poll(
                lambda: (
                    httpx.get(f"{system.base_url}/readyz", timeout=3).status_code == 200
                ),
                timeout=5,
            )
            # Deliveries resume, and the subscription streams them again. The
            # slow runs' results were written while the API's listener was
            # still reconnecting, so only its re-read after the resync shows them.
            target.wait_for(delivered_before + INTERVAL_JOBS, timeout=15)

            def slow_seen_succeeding() -> bool:
                seen = subscription.updates_since(restarted)
                done = {u["jobId"] for u in seen if u["status"] == "SUCCEEDED"}
                return done >= set(slow_jobs)

            poll(slow_seen_succeeding, timeout=15)
            assert subscription.ended is None, subscription.ended

            slow = query(
                url,
                "SELECT e.status, e.attempt, count(a.*), "
                "array_agg(a.outcome::text) FROM executions e "
                "LEFT JOIN attempts a ON a.execution_id = e.id "
                "WHERE e.job_id = ANY(%s::uuid[]) GROUP BY e.id",
                slow_jobs,
            )
            assert slow == [("SUCCEEDED", 1, 1, ["SUCCEEDED"])] * SLOW_RUNS

            restarted_db = query(url, "SELECT tickwork_now()")[0][0]
            stuck = query(
                url,
                "SELECT count(*) FROM executions "
                "WHERE status = 'RUNNING' AND started_at < %s - interval '5 s'",
                restarted_db,
            )
            assert stuck == [(0,)]
            assert_no_fire_time_lost(url)

        registered = query(url, "SELECT pid, state FROM daemons ORDER BY pid")
        assert registered == sorted((d.pid, "RUNNING") for d in daemons)
        assert [d.poll() for d in daemons] == [None, None]
        assert api.poll() is None
    finally:
        if subscription is not None:
            subscription.close()
        system.stop()
        production.stop()

    for log in sorted(tmp_path.glob("daemon-*.log")):
        text = log.read_text()
        assert text.count("database unavailable, claiming paused") == 1, log
        assert "database reachable again" in text, log
        assert "Traceback" not in text, log


def assert_no_fire_time_lost(url: str) -> None:
    """Each interval job has one execution per fire time from its first to its
    last, none MISSED: the outage was well within the 60 s misfire grace."""
    rows = query(
        url,
        "SELECT job_id, scheduled_for, status FROM executions "
        "WHERE trigger = 'SCHEDULE' AND job_id IN "
        "(SELECT id FROM jobs WHERE name LIKE 'tick %%') "
        "ORDER BY job_id, scheduled_for",
    )
    by_job: dict[object, list[datetime]] = {}
    for job_id, scheduled_for, status in rows:
        assert status != "MISSED", (job_id, scheduled_for)
        by_job.setdefault(job_id, []).append(scheduled_for)
    assert len(by_job) == INTERVAL_JOBS
    for job_id, times in by_job.items():
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert steps == {2.0}, (job_id, times)
