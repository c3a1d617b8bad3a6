"""The daemon against a real PostgreSQL and real local HTTP targets."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import psycopg

from daemon.delivery import perform
from daemon.queue import Claim, Outcome
from daemon.worker import Worker
from shared.actions import Action
from shared.egress import EgressPolicy
from shared.http import HttpClient
from shared.schedule import Schedule
from tests.support.daemons import (
    database_name,
    one_pass,
    settings_for,
    settle,
    started,
    webhook,
)
from tests.support.jobs import (
    attempts_of,
    db_now,
    executions_of,
    insert_job,
    shift_clock,
)
from tests.support.target import Target


async def test_a_due_webhook_job_is_posted_once_and_succeeds(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A due interval job gets one POST with its ids, and reads back SUCCEEDED."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60, start_at=now),
        action=webhook(target.url("/ok"), headers={"x-team": "ops"}),
        payload={"report": "daily"},
    )

    await one_pass(settings_for(database_url))

    [request] = target.wait_for(1)
    [execution] = await executions_of(db, job_id)
    body = request.json()
    assert request.method == "POST"
    assert request.headers["idempotency-key"] == str(execution["id"])
    assert request.headers["x-team"] == "ops"
    assert body["execution_id"] == str(execution["id"])
    assert body["job_id"] == str(job_id)
    assert body["payload"] == {"report": "daily"}
    assert body["attempt"] == 1
    assert execution["status"] == "SUCCEEDED"
    assert execution["http_status"] == 200
    assert execution["scheduled_for"] == now
    [attempt] = await attempts_of(db, execution["id"])
    assert attempt["outcome"] == "SUCCEEDED"
    assert attempt["http_status"] == 200


async def test_interval_jobs_advance_to_the_next_anchored_fire_time(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Firing moves nextRunAt to anchor + k * interval, not to now + interval."""
    now = await db_now(db)
    anchor = now - timedelta(seconds=25)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=10, start_at=anchor),
        action=webhook(target.url("/ok")),
    )

    await one_pass(settings_for(database_url))

    cur = await db.execute("SELECT next_run_at FROM jobs WHERE id = %s", (job_id,))
    (next_run_at,) = await cur.fetchone()
    # Fire times anchor + 0, 10 and 20 s are due and within the grace period:
    # the first runs late, and the overlap policy (FORBID) skips the other two.
    executions = await executions_of(db, job_id)
    assert sorted((e["scheduled_for"] - anchor, e["status"]) for e in executions) == [
        (timedelta(seconds=0), "SUCCEEDED"),
        (timedelta(seconds=10), "SKIPPED"),
        (timedelta(seconds=20), "SKIPPED"),
    ]
    assert next_run_at == anchor + timedelta(seconds=30)


async def test_a_failing_target_is_retried_in_the_database_until_failed(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Each failure schedules a retry by the database clock; after maxRetries + 1
    attempts the execution is FAILED and the error is kept."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/status/503")),
        max_retries=2,
    )

    for attempt in range(1, 4):
        await one_pass(settings_for(database_url))
        [execution] = await executions_of(db, job_id)
        if attempt < 3:
            assert execution["status"] == "RETRYING"
            assert execution["run_at"] > await db_now(db)
            # Nothing is claimable until the retry is due.
            async with started(settings_for(database_url)) as idle:
                await idle.run_once()
                assert idle.in_flight == {}
            await shift_clock(
                db, database_name(database_url), f"{attempt * 10} seconds"
            )

    assert execution["status"] == "FAILED"
    assert execution["failures"] == 3
    assert execution["http_status"] == 503
    assert "HTTP 503" in execution["error"]
    attempts = await attempts_of(db, execution["id"])
    assert [a["outcome"] for a in attempts] == ["FAILED"] * 3
    assert len(target.requests) == 3
    cur = await db.execute("SELECT state FROM jobs WHERE id = %s", (job_id,))
    assert (await cur.fetchone())[0] == "COMPLETED"


async def test_a_retry_that_succeeds_ends_succeeded(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A target that fails once and then works ends SUCCEEDED on attempt 2."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/flaky/1")),
    )
    await one_pass(settings_for(database_url))
    await shift_clock(db, database_name(database_url), "1 minute")
    await one_pass(settings_for(database_url))

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "SUCCEEDED"
    assert execution["attempt"] == 2
    assert execution["error"] is None
    deliveries = target.wait_for(2)
    assert {r.headers["idempotency-key"] for r in deliveries} == {str(execution["id"])}


async def test_a_run_whose_lease_expired_is_taken_over_and_the_old_holder_is_fenced(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Daemon A claims and goes silent; after the lease, daemon B takes the run
    over. A's late result is rejected by the fence and B's stands."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/slow/0.5")),
        max_retries=0,
    )
    async with started(settings_for(database_url, lease_seconds=5)) as a:
        await a.run_once()
        [run_a] = a.in_flight.values()

        await shift_clock(db, database_name(database_url), "10 seconds")
        async with started(settings_for(database_url, lease_seconds=5)) as b:
            await b.run_once()
            [run_b] = b.in_flight.values()
            assert run_b.claim.fence == run_a.claim.fence + 1
            assert run_b.claim.attempt == 2
            await settle(b)

        await settle(a)  # A's result arrives last and must not count.

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "SUCCEEDED"
    assert execution["daemon_id"] == b.id
    assert execution["failures"] == 0  # a takeover uses up no retry
    attempts = await attempts_of(db, execution["id"])
    assert [(a["number"], a["outcome"]) for a in attempts] == [
        (1, "ABANDONED"),
        (2, "SUCCEEDED"),
    ]
    assert attempts[1]["daemon_id"] == b.id


async def test_concurrent_daemons_never_claim_the_same_run(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Four daemons claiming 120 due runs at once get disjoint sets that cover all."""
    now = await db_now(db)
    for _ in range(120):
        await insert_job(
            db,
            schedule=Schedule(kind="at", at=now),
            action=webhook(target.url("/ok")),
        )
    settings = settings_for(database_url, concurrency=200, claim_batch=40)
    # Runs wait at a gate, so every claim stays visible until all are made.
    gate = asyncio.Event()
    http = HttpClient(egress=EgressPolicy.permissive())

    async def gated(claim: Claim) -> Outcome:
        await gate.wait()
        return await perform(claim, http, settings)

    workers = [Worker(settings, http=http, perform_run=gated) for _ in range(4)]
    for worker in workers:
        await worker.start()
    try:
        async with asyncio.timeout(20):
            while sum(len(w.in_flight) for w in workers) < 120:
                await asyncio.gather(*(w.run_once() for w in workers))
        claimed = [set(w.in_flight) for w in workers]
        gate.set()
        for worker in workers:
            await settle(worker)
    finally:
        await http.aclose()
        for worker in workers:
            await worker.pool.close()

    union = set().union(*claimed)
    assert sum(len(c) for c in claimed) == len(union) == 120
    cur = await db.execute("SELECT status, count(*) FROM executions GROUP BY status")
    assert await cur.fetchall() == [("SUCCEEDED", 120)]


async def test_a_one_off_job_runs_once_and_completes(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """An `at` job in the past runs at once, then is COMPLETED and never re-runs."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=now - timedelta(hours=1)),
        action=webhook(target.url("/ok")),
    )
    for _ in range(2):  # a second daemon start must not run it again
        await one_pass(settings_for(database_url))

    assert len(target.requests) == 1
    cur = await db.execute(
        "SELECT state, state_reason, next_run_at FROM jobs WHERE id = %s", (job_id,)
    )
    assert await cur.fetchone() == ("COMPLETED", "no fire times left", None)


async def test_a_fetch_job_stores_the_json_it_got(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A fetch keeps the JSON document it fetched as the execution's result."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=Action(kind="fetch", url=target.url("/json")),
    )
    await one_pass(settings_for(database_url))

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "SUCCEEDED"
    assert execution["result"] == {"content": "Simple is better.", "author": "A tester"}


async def test_a_fetch_without_url_uses_the_configured_quote_source(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A fetch with no URL asks the quote source the daemon is configured with."""
    await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=Action(kind="fetch"),
    )
    settings = settings_for(database_url, quote_url=target.url("/json"))
    await one_pass(settings)

    [request] = target.wait_for(1)
    assert request.method == "GET" and request.path == "/json"


async def test_redirects_fail_clearly_unless_the_job_follows_them(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A 3xx fails with a message saying why; followRedirects makes it succeed."""
    now = await db_now(db)
    plain = await insert_job(
        db,
        schedule=Schedule(kind="at", at=now),
        action=webhook(target.url("/redirect")),
        max_retries=0,
    )
    following = await insert_job(
        db,
        schedule=Schedule(kind="at", at=now),
        action=webhook(target.url("/redirect"), follow_redirects=True),
    )
    await one_pass(settings_for(database_url))

    [failed] = await executions_of(db, plain)
    [succeeded] = await executions_of(db, following)
    assert failed["status"] == "FAILED"
    assert "redirect" in failed["error"] and "followRedirects" in failed["error"]
    assert succeeded["status"] == "SUCCEEDED"


async def test_one_timeout_bounds_the_whole_attempt(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A target slower than the job's timeout fails after the timeout, saying so."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/slow/3")),
        timeout_seconds=0.5,
        max_retries=0,
    )
    await one_pass(settings_for(database_url))

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "FAILED"
    assert "timed out after 0.5 s" in execution["error"]
    assert execution["finished_at"] - execution["started_at"] < timedelta(seconds=2)


async def test_shutdown_hands_unfinished_runs_back_at_once(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A daemon stopping with a run still going returns it PENDING, claimable now."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(target.url("/slow/5")),
    )
    worker = Worker(settings_for(database_url, shutdown_grace_seconds=0.2))
    running = asyncio.create_task(worker.run())
    await asyncio.to_thread(target.wait_for, 1)
    worker.stop()
    await asyncio.wait_for(running, timeout=10)

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "PENDING"
    assert execution["daemon_id"] is None
    assert execution["run_at"] <= await db_now(db)
    [attempt] = await attempts_of(db, execution["id"])
    assert attempt["outcome"] == "ABANDONED"
    cur = await db.execute("SELECT state FROM daemons WHERE id = %s", (worker.id,))
    assert (await cur.fetchone())[0] == "STOPPED"


async def test_a_job_announced_with_notify_runs_at_once_despite_an_hour_poll(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """With a one-hour fallback poll, a job made due and announced runs at once."""
    worker = Worker(settings_for(database_url, poll_seconds=3600))
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            # Polls the database: there is no event to wait on across processes.
            while not await _listening(db):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await insert_job(
            db,
            schedule=Schedule(kind="at", at=await db_now(db)),
            action=webhook(target.url("/ok")),
        )
        await db.execute("NOTIFY tickwork_wakeup")
        await asyncio.to_thread(target.wait_for, 1, 5.0)
    finally:
        worker.stop()
        await asyncio.wait_for(running, timeout=10)


async def _listening(db: psycopg.AsyncConnection) -> bool:
    cur = await db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN tickwork_%%'"
    )
    return (await cur.fetchone())[0] > 0


async def test_firing_and_claiming_announce_all_changes_in_one_notification(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Three jobs fired and claimed in one transaction make one NOTIFY carrying
    the three execution ids; writing their results makes one more."""
    now = await db_now(db)
    jobs = [
        await insert_job(
            db, schedule=Schedule(kind="at", at=now), action=webhook(target.url("/ok"))
        )
        for _ in range(3)
    ]
    await db.execute("LISTEN tickwork_executions")

    await one_pass(settings_for(database_url))

    payloads = [n.payload async for n in db.notifies(timeout=1.0)]
    ids = {str((await executions_of(db, job))[0]["id"]) for job in jobs}
    assert len(payloads) == 2
    assert [set(p.split(",")) for p in payloads] == [ids, ids]


async def test_a_crash_inside_a_run_fails_the_attempt_instead_of_hanging(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """An unexpected exception while running is recorded as a failed attempt with
    the error, not left RUNNING for ever."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook("http://127.0.0.1:9/never-called"),
        max_retries=0,
    )

    async def broken(claim: Claim) -> Outcome:
        raise RuntimeError("a bug")

    worker = Worker(settings_for(database_url), perform_run=broken)
    await worker.start()
    try:
        await worker.run_once()
        await settle(worker)
    finally:
        await worker.http.aclose()
        await worker.pool.close()

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "internal error in the daemon: RuntimeError: a bug"


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """user:password@ in a webhook URL arrives as one Authorization header."""
    url = target.url("/ok").replace("http://", "http://hook%40user:s3cret@")
    await insert_job(
        db, schedule=Schedule(kind="at", at=await db_now(db)), action=webhook(url)
    )
    await one_pass(settings_for(database_url))

    [request] = target.wait_for(1)
    # base64 of "hook@user:s3cret"
    assert request.headers["authorization"] == "Basic aG9va0B1c2VyOnMzY3JldA=="


async def test_a_refused_connection_says_so_and_is_retried(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """Nothing listening: the error says the connection was refused, not a timeout."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook(f"http://127.0.0.1:{port}/hook"),
    )
    await one_pass(settings_for(database_url))

    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "RETRYING"
    assert "connection refused" in execution["error"] or (
        "could not connect" in execution["error"]
    )
    assert "timed out" not in execution["error"]


async def test_bodies_with_nul_bytes_and_bad_utf8_are_stored_safely(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A binary answer succeeds and its excerpt is kept readable; JSON holding a
    NUL fails with a clear error instead of blocking the results of others."""
    now = await db_now(db)
    binary = await insert_job(
        db, schedule=Schedule(kind="at", at=now), action=webhook(target.url("/binary"))
    )
    nul_json = await insert_job(
        db,
        schedule=Schedule(kind="at", at=now),
        action=Action(kind="fetch", url=target.url("/json-nul")),
        max_retries=0,
    )
    fine = await insert_job(
        db, schedule=Schedule(kind="at", at=now), action=webhook(target.url("/ok"))
    )
    await one_pass(settings_for(database_url))

    [stored] = await executions_of(db, binary)
    assert stored["status"] == "SUCCEEDED"
    [attempt] = await attempts_of(db, stored["id"])
    assert "not UTF-8" in attempt["response_excerpt"]
    assert "\x00" not in attempt["response_excerpt"]
    [refused] = await executions_of(db, nul_json)
    assert refused["status"] == "FAILED"
    assert "NUL characters" in refused["error"]
    [other] = await executions_of(db, fine)
    assert other["status"] == "SUCCEEDED"


async def test_a_silent_daemon_is_marked_dead_and_later_forgotten(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """A daemon that stops heartbeating is DEAD after two lease periods, by any
    live daemon's heartbeat, and its row is removed a day later."""
    async with started(settings_for(database_url, lease_seconds=10)) as silent:
        pass  # registered, then never heard from again (its pool is closed)

    await shift_clock(db, database_name(database_url), "21 seconds")
    async with started(settings_for(database_url, lease_seconds=10)) as live:
        await live.beat()
        cur = await db.execute("SELECT id, state FROM daemons ORDER BY started_at")
        assert await cur.fetchall() == [(silent.id, "DEAD"), (live.id, "RUNNING")]

    # A day later (new connections see the shifted clock, so a new daemon).
    await shift_clock(db, database_name(database_url), "1 day 1 minute")
    async with started(settings_for(database_url, lease_seconds=10)) as later:
        await later.beat()
    cur = await db.execute("SELECT id FROM daemons WHERE id = %s", (silent.id,))
    assert await cur.fetchall() == []
