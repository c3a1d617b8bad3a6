"""Alerts: queued in the statement that causes them, sent signed, retried, and
never sent twice by two daemons."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, create_job, graphql, interval_job
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from daemon import queue
from daemon.alerts import Alerter
from daemon.worker import Worker
from shared.schedule import Schedule
from shared.settings import Settings
from tests.support.daemons import settings_for, settle, started, webhook
from tests.support.jobs import db_now, executions_of, insert_job
from tests.support.target import Target

KEY = b"a key only this test knows"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_800_000_000  # the Unix time the test Alerters stamp on their sends


@pytest.fixture
def hooks() -> Iterator[Target]:
    """A second recording server: the alert receiver, apart from job targets."""
    with Target() as server:
        yield server


@pytest.fixture
async def worker(database_url: str) -> AsyncIterator[Worker]:
    async with started(settings_for(database_url, alert_secret=SECRET)) as daemon:
        yield daemon


def alerter(
    worker: Worker, settings: Settings | None = None, **options: Any
) -> Alerter:
    return Alerter(
        settings or worker.settings,
        worker.pool,
        worker.http,
        clock=lambda: NOW,
        **options,
    )


async def alerts(db: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    cur = db.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM alerts ORDER BY id")
    return await cur.fetchall()


async def run_once_and_settle(worker: Worker) -> None:
    await worker.run_once()
    await settle(worker)


async def insert_failing_job(
    db: psycopg.AsyncConnection, target: Target, **columns: Any
) -> uuid.UUID:
    """A job due now whose one attempt fails for good (404, no retries)."""
    return await insert_job(
        db,
        schedule=Schedule(
            kind="interval", interval_seconds=3600, start_at=await db_now(db)
        ),
        action=webhook(target.url("/status/404")),
        max_retries=0,
        name="nightly report",
        **columns,
    )


async def requests_to(hooks: Target, count: int) -> list[Any]:
    """``hooks.wait_for`` in a thread, so the event loop keeps sending."""
    return await asyncio.to_thread(hooks.wait_for, count)


async def test_a_final_failure_sends_one_alert_signed_with_the_secret(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """The job's alertUrl receives one EXECUTION_FAILED event whose signature an
    independent HMAC over id.timestamp.body confirms; a second pass sends
    nothing more."""
    job_id = await insert_failing_job(db, target, alert_url=hooks.url("/a"))
    await run_once_and_settle(worker)
    (execution,) = await executions_of(db, job_id)
    assert execution["status"] == "FAILED"

    sender = alerter(worker)
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0
    (request,) = await requests_to(hooks, 1)

    headers = request.headers
    assert headers["webhook-timestamp"] == str(NOW)
    signed = f"{headers['webhook-id']}.{NOW}.".encode() + request.body
    expected = hmac.new(KEY, signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()

    event = request.json()
    assert event["type"] == "EXECUTION_FAILED"
    assert event["job_id"] == str(job_id)
    assert event["job_name"] == "nightly report"
    assert event["execution_id"] == str(execution["id"])
    assert "404" in event["error"]
    assert event["scheduled_for"] is not None
    assert (event["reason"], event["covers"]) == (None, None)
    assert event["occurred_at"]
    (row,) = await alerts(db)
    assert row["delivered_at"] is not None
    assert (row["attempts"], row["next_attempt_at"]) == (1, None)


async def test_a_job_that_pauses_itself_sends_job_paused(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """The failure that pauses a job queues JOB_PAUSED, naming that failure and
    the reason, beside its own EXECUTION_FAILED."""
    job_id = await insert_failing_job(
        db, target, alert_url=hooks.url("/a"), pause_after_failures=1
    )
    await run_once_and_settle(worker)
    (execution,) = await executions_of(db, job_id)

    assert await alerter(worker).run_once() == 2
    events = {r.json()["type"]: r.json() for r in await requests_to(hooks, 2)}
    assert set(events) == {"EXECUTION_FAILED", "JOB_PAUSED"}
    paused = events["JOB_PAUSED"]
    assert paused["reason"] == "paused after 1 failed executions in a row"
    assert paused["execution_id"] == str(execution["id"])
    assert "404" in paused["error"]


async def test_a_one_off_whose_run_fails_completes_instead_of_pausing(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """A one-off with pauseAfterFailures 1 has nothing left after its failed
    run: it completes, as every one-off does, and only EXECUTION_FAILED is sent."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/status/404")),
        max_retries=0,
        alert_url=hooks.url("/a"),
        pause_after_failures=1,
    )
    await run_once_and_settle(worker)
    (execution,) = await executions_of(db, job_id)
    assert execution["status"] == "FAILED"

    cur = await db.execute(
        "SELECT state, state_reason, consecutive_failures FROM jobs WHERE id = %s",
        (job_id,),
    )
    assert await cur.fetchone() == ("COMPLETED", "no fire times left", 1)
    assert [row["kind"] for row in await alerts(db)] == ["EXECUTION_FAILED"]


async def test_a_missed_window_sends_fire_times_missed_with_covers(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """A 10-minute job found two hours late records one MISSED gap, and its
    alert says how many fire times the gap covers."""
    anchor = await db_now(db) - timedelta(hours=2, minutes=5)
    await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=600, start_at=anchor),
        action=webhook(target.url("/ok")),
        alert_url=hooks.url("/a"),
    )
    await run_once_and_settle(worker)

    assert await alerter(worker).run_once() == 1
    (event,) = [r.json() for r in await requests_to(hooks, 1)]
    assert event["type"] == "FIRE_TIMES_MISSED"
    assert event["covers"] == 12
    assert "12 fire times not run" in event["reason"]
    assert event["error"] is None


async def test_without_an_alert_url_nothing_is_queued(
    db: psycopg.AsyncConnection, worker: Worker, target: Target
) -> None:
    """Neither the job nor the daemon has an alert URL: a failure, a pause and a
    missed window leave no alert rows."""
    await insert_failing_job(db, target, pause_after_failures=1)
    await insert_job(
        db,
        schedule=Schedule(
            kind="interval",
            interval_seconds=600,
            start_at=await db_now(db) - timedelta(hours=1),
        ),
        action=webhook(target.url("/ok")),
    )
    await run_once_and_settle(worker)

    cur = await db.execute("SELECT status FROM executions ORDER BY status")
    assert {row[0] for row in await cur.fetchall()} >= {"FAILED", "MISSED"}
    assert await alerts(db) == []


async def test_the_daemons_alert_url_serves_jobs_without_their_own(
    database_url: str,
    db: psycopg.AsyncConnection,
    worker: Worker,
    target: Target,
    hooks: Target,
) -> None:
    """TICKWORK_ALERT_URL, passed to the firing statement, queues the alert; a
    daemon without that setting leaves it for one that has it."""
    await insert_job(
        db,
        schedule=Schedule(
            kind="interval",
            interval_seconds=600,
            start_at=await db_now(db) - timedelta(hours=1),
        ),
        action=webhook(target.url("/ok")),
        catch_up="NONE",
    )
    async with worker.pool.connection() as conn:
        await queue.schedule_and_claim(
            conn,
            daemon_id=worker.id,
            schedule_limit=10,
            claim_limit=0,
            lease_seconds=30,
            alert_url=hooks.url("/global"),
        )

    assert await alerter(worker).run_once() == 0  # its settings have no URL
    configured = settings_for(database_url, alert_url=hooks.url("/global"))
    assert await alerter(worker, configured).run_once() == 1
    (request,) = await requests_to(hooks, 1)
    assert (request.path, request.json()["type"]) == ("/global", "FIRE_TIMES_MISSED")
    assert "webhook-signature" not in request.headers  # no secret: unsigned


async def test_a_failing_alert_endpoint_is_retried_while_runs_go_on(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """An endpoint answering 500 twice gets the alert on the third try; the
    sender runs beside the worker, which keeps finishing runs meanwhile."""
    await insert_failing_job(db, target, alert_url=hooks.url("/flaky/2"))
    await run_once_and_settle(worker)
    polling = worker.settings.model_copy(update={"alert_poll_seconds": 0.02})
    sender = alerter(worker, polling, retry_base_seconds=0.05, retry_max_seconds=0.1)
    task = asyncio.create_task(sender.run())
    try:
        await requests_to(hooks, 1)
        other = await insert_job(
            db,
            schedule=Schedule(
                kind="interval", interval_seconds=3600, start_at=await db_now(db)
            ),
            action=webhook(target.url("/ok")),
        )
        await run_once_and_settle(worker)
        assert [e["status"] for e in await executions_of(db, other)] == ["SUCCEEDED"]

        deadline = time.monotonic() + 10
        while (await alerts(db))[0]["delivered_at"] is None:
            assert time.monotonic() < deadline, "the alert was never delivered"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    (row,) = await alerts(db)
    assert row["attempts"] == 3
    assert "HTTP 500" in row["last_error"]
    assert [r.path for r in hooks.requests] == ["/flaky/2"] * 3
    assert len({r.headers["webhook-id"] for r in hooks.requests}) == 1


async def test_an_alert_failing_for_a_day_is_given_up_and_kept(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """An alert queued 25 hours ago that fails again is not tried any more; its
    row stays with the last error."""
    job_id = await insert_failing_job(db, target, alert_url=hooks.url("/status/503"))
    await db.execute(
        "INSERT INTO alerts (job_id, kind, payload, created_at) "
        "VALUES (%s, 'JOB_PAUSED', %s, tickwork_now() - interval '25 hours')",
        (job_id, Jsonb({"type": "JOB_PAUSED"})),
    )

    sender = alerter(worker)
    assert await sender.run_once() == 0
    (row,) = await alerts(db)
    assert (row["delivered_at"], row["next_attempt_at"]) == (None, None)
    assert "HTTP 503" in row["last_error"]
    assert await sender.run_once() == 0
    assert len(hooks.requests) == 1


async def insert_alerts(db: psycopg.AsyncConnection, job_id: object, n: int) -> None:
    await db.execute(
        "INSERT INTO alerts (job_id, kind, payload) "
        "SELECT %s, 'EXECUTION_FAILED', jsonb_build_object('n', n) "
        "FROM generate_series(1, %s) AS n",
        (job_id, n),
    )


async def test_two_alerters_draining_at_once_send_each_alert_once(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """Two senders claiming batches of 10 concurrently from 45 due alerts
    deliver all 45 between them, none twice."""
    job_id = await insert_failing_job(db, target, alert_url=hooks.url("/a"))
    await insert_alerts(db, job_id, 45)

    counts = await asyncio.gather(
        alerter(worker, batch=10).run_once(), alerter(worker, batch=10).run_once()
    )
    assert sum(counts) == 45
    ids = [r.headers["webhook-id"] for r in await requests_to(hooks, 45)]
    assert len(set(ids)) == len(ids) == 45


async def test_an_alert_claimed_by_one_daemon_is_not_sent_by_another(
    db: psycopg.AsyncConnection, worker: Worker, target: Target, hooks: Target
) -> None:
    """Daemon A claims the alerts and has not sent them yet; daemon B's pass in
    between finds none due, so only A's sends go out."""
    job_id = await insert_failing_job(db, target, alert_url=hooks.url("/a"))
    await insert_alerts(db, job_id, 3)
    first, second = alerter(worker), alerter(worker)

    held = await first.claim()
    assert len(held) == 3
    assert await second.run_once() == 0
    assert hooks.requests == []
    assert [await first.send(alert) for alert in held] == [None] * 3
    assert len(await requests_to(hooks, 3)) == 3


def test_the_api_stores_validates_and_clears_a_jobs_alert_url(
    database_url: str,
) -> None:
    """policies.alertUrl is stored, refused when not an http(s) URL, and null
    clears it."""
    fields = "__typename ... on Job { id policies { alertUrl } } " + (
        "... on InvalidInput { errors { field message } }"
    )
    update = (
        "mutation ($id: ID!, $input: UpdateJobInput!) "
        f"{{ updateJob(id: $id, input: $input) {{ {fields} }} }}"
    )
    with api_client(database_url) as client:
        bad = create_job(client, **interval_job(policies={"alertUrl": "ftp://x"}))
        assert bad["errors"] == [
            {
                "field": "policies.alertUrl",
                "message": "must be an http:// or https:// URL",
            }
        ]

        job = create_job(
            client, **interval_job(policies={"alertUrl": " https://ops.example/a "})
        )
        query = "query ($id: ID!) { job(id: $id) { policies { alertUrl } } }"
        stored = graphql(client, query, {"id": job["id"]})["job"]
        cleared = graphql(
            client, update, {"id": job["id"], "input": {"policies": {"alertUrl": None}}}
        )["updateJob"]
        after = graphql(client, query, {"id": job["id"]})["job"]
    assert stored["policies"]["alertUrl"] == "https://ops.example/a"
    assert cleared["policies"]["alertUrl"] is None
    assert after["policies"]["alertUrl"] is None
