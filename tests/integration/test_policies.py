"""Scheduling policies against a real database: catch-up, overlap, auto-pause,
and what many daemons racing on one fire time produce."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg

from daemon.worker import Worker
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


async def statuses(db: psycopg.AsyncConnection, job_id: object) -> list[str]:
    return [e["status"] for e in await executions_of(db, job_id)]


async def test_an_outage_becomes_one_missed_gap_and_one_late_run(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A 10-minute job found two hours late (LATEST) records the gap as one MISSED
    execution covering the missed times, runs the newest once, and moves on."""
    now = await db_now(db)
    anchor = now - timedelta(hours=2, minutes=5)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=600, start_at=anchor),
        action=webhook(target.url("/ok")),
    )
    async with started(settings_for(database_url)) as worker:
        await worker.run_once()
        await settle(worker)
        await worker.run_once()  # a second pass (or a restart) adds nothing
        await settle(worker)

    missed, run = await executions_of(db, job_id)
    assert (missed["status"], missed["covers"], missed["scheduled_for"]) == (
        "MISSED",
        12,
        anchor,
    )
    assert "12 fire times not run" in missed["reason"]
    assert run["status"] == "SUCCEEDED"
    assert run["scheduled_for"] == anchor + timedelta(hours=2)
    assert len(target.requests) == 1
    cur = await db.execute("SELECT next_run_at FROM jobs WHERE id = %s", (job_id,))
    assert (await cur.fetchone())[0] == anchor + timedelta(hours=2, minutes=10)


async def test_catch_up_none_runs_nothing_that_was_missed(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """With catch-up NONE, a fully missed window only leaves its MISSED record."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(
            kind="interval", interval_seconds=3600, start_at=now - timedelta(minutes=30)
        ),
        action=webhook(target.url("/ok")),
        catch_up="NONE",
    )
    await one_pass(settings_for(database_url))

    assert await statuses(db, job_id) == ["MISSED"]
    assert target.requests == []


async def test_forbid_skips_a_fire_time_while_the_previous_run_is_unfinished(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """FORBID: the next fire time, due while a run waits for a retry, is SKIPPED."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60, start_at=now),
        action=webhook(target.url("/status/500")),
        max_retries=5,
    )
    await one_pass(settings_for(database_url, retry_base_seconds=300))
    await shift_clock(db, database_name(database_url), "61 seconds")
    await one_pass(settings_for(database_url))

    first, second = await executions_of(db, job_id)
    assert first["status"] == "RETRYING"
    assert second["status"] == "SKIPPED"
    assert "still unfinished" in second["reason"]


async def test_replace_cancels_the_running_execution_and_fences_its_holder(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """REPLACE: daemon B's firing cancels the run daemon A holds; A is told and
    stops, the CANCELLED attempt is kept, and A's late result cannot land."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60, start_at=now),
        action=webhook(target.url("/slow/30")),
        overlap="REPLACE",
        timeout_seconds=60,
    )
    a = Worker(settings_for(database_url, poll_seconds=3600))
    running = asyncio.create_task(a.run())
    try:
        await asyncio.to_thread(target.wait_for, 1)
        [held] = a.in_flight.values()

        await shift_clock(db, database_name(database_url), "60 seconds")
        async with started(settings_for(database_url)) as b:
            await b.run_once()
            async with asyncio.timeout(10):
                while held.claim.execution_id in a.in_flight:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert held.task.cancelled()
    finally:
        a.stop()
        await asyncio.wait_for(running, timeout=20)

    old, new = await executions_of(db, job_id)
    assert old["id"] == held.claim.execution_id
    assert old["status"] == "CANCELLED"
    assert old["fence"] == held.claim.fence + 1
    assert "overlap REPLACE" in old["reason"]
    [attempt] = await attempts_of(db, old["id"])
    assert attempt["outcome"] == "CANCELLED"
    assert new["status"] in ("PENDING", "RUNNING")


async def test_a_job_pauses_itself_after_failures_in_a_row(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """pauseAfterFailures=2: two FAILED executions in a row pause the job, with
    the reason on the job."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60, start_at=now),
        action=webhook(target.url("/status/503")),
        max_retries=0,
        pause_after_failures=2,
    )
    for shift in ("0 seconds", "60 seconds", "120 seconds"):
        await shift_clock(db, database_name(database_url), shift)
        await one_pass(settings_for(database_url))

    assert await statuses(db, job_id) == ["FAILED", "FAILED"]
    cur = await db.execute(
        "SELECT state, state_reason FROM jobs WHERE id = %s", (job_id,)
    )
    assert await cur.fetchone() == (
        "PAUSED",
        "paused after 2 failed executions in a row",
    )


async def test_daemons_racing_on_one_fire_time_make_one_execution(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Four daemons firing the same 30 due jobs at once: exactly one execution
    per job and fire time, enforced by the database."""
    now = await db_now(db)
    jobs = [
        await insert_job(
            db,
            schedule=Schedule(kind="interval", interval_seconds=3600, start_at=now),
            action=webhook(target.url("/ok")),
        )
        for _ in range(30)
    ]
    workers = [Worker(settings_for(database_url, claim_batch=10)) for _ in range(4)]
    for worker in workers:
        await worker.start()
    try:
        for _ in range(4):
            await asyncio.gather(*(w.run_once() for w in workers))
        for worker in workers:
            await settle(worker)
    finally:
        for worker in workers:
            await worker.http.aclose()
            await worker.pool.close()

    cur = await db.execute(
        "SELECT job_id, scheduled_for, count(*) FROM executions "
        "GROUP BY job_id, scheduled_for"
    )
    rows = await cur.fetchall()
    assert sorted(r[0] for r in rows) == sorted(jobs)
    assert {r[1] for r in rows} == {now}
    assert {r[2] for r in rows} == {1}
    assert len(target.requests) == 30


async def test_restarts_inside_a_missed_window_never_repeat_or_lose_a_fire_time(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """A minutely job: run, every daemon down 5 minutes, a restart, down 3 more
    minutes, another restart. Each fire time is run or counted missed exactly once."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60, start_at=now),
        action=webhook(target.url("/ok")),
    )
    for offset in ("0 minutes", "5 minutes", "8 minutes"):
        await shift_clock(db, database_name(database_url), offset)
        await one_pass(settings_for(database_url))

    executions = await executions_of(db, job_id)
    timeline = [
        (
            int((e["scheduled_for"] - now).total_seconds() // 60),
            e["status"],
            e["covers"],
        )
        for e in executions
    ]
    assert sorted(timeline) == [
        (0, "SUCCEEDED", 1),
        (1, "MISSED", 4),  # minutes 1-4
        (5, "SUCCEEDED", 1),
        (6, "MISSED", 2),  # minutes 6-7
        (8, "SUCCEEDED", 1),
    ]
    assert sum(covers for _, _, covers in timeline) == 9  # minutes 0-8, once each


async def test_jitter_holds_a_run_back_until_its_own_run_at(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """With jitter, the execution keeps its fire time and is claimed only once
    its chosen runAt has come."""
    now = await db_now(db)
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=3600, start_at=now),
        action=webhook(target.url("/ok")),
        jitter_seconds=600,
    )
    await one_pass(settings_for(database_url))
    [execution] = await executions_of(db, job_id)
    assert execution["scheduled_for"] == now
    assert now <= execution["run_at"] <= now + timedelta(seconds=600)

    if execution["run_at"] > await db_now(db):
        assert execution["status"] == "PENDING"
        await shift_clock(db, database_name(database_url), "601 seconds")
        await one_pass(settings_for(database_url))
    [execution] = await executions_of(db, job_id)
    assert execution["status"] == "SUCCEEDED"
