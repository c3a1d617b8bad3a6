"""One fencing rule: however a daemon lost a run, its late write is refused.

A daemon claims a run and, while it is still "talking HTTP", loses it: its lease
expires and another daemon takes it over, a user cancels it, the REPLACE policy
cancels it, or the daemon itself handed it back on shutdown. Its late result
must not overwrite what replaced it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from daemon import queue
from daemon.delivery import outcome
from daemon.queue import Claim, Outcome
from daemon.worker import Worker
from shared.schedule import Schedule
from tests.support.daemons import database_name, settings_for, started, webhook
from tests.support.jobs import db_now, executions_of, insert_job, shift_clock

Loss = Callable[[str, psycopg.AsyncConnection, Worker, Claim], Awaitable[str]]


async def taken_over(
    url: str, db: psycopg.AsyncConnection, a: Worker, claim: Claim
) -> str:
    await shift_clock(db, database_name(url), "31 seconds")
    async with started(settings_for(url)) as b:
        await b.run_once()
        for run in b.in_flight.values():
            run.task.cancel()
    return "RUNNING"


async def cancelled(
    url: str, db: psycopg.AsyncConnection, a: Worker, claim: Claim
) -> str:
    await db.execute(
        "SELECT tickwork_cancel_executions(ARRAY[%s]::uuid[], 'by a test')",
        (claim.execution_id,),
    )
    return "CANCELLED"


async def replaced(
    url: str, db: psycopg.AsyncConnection, a: Worker, claim: Claim
) -> str:
    await db.execute(queue.REPLACE_UNFINISHED, {"job_ids": [claim.job_id]})
    return "CANCELLED"


async def handed_back(
    url: str, db: psycopg.AsyncConnection, a: Worker, claim: Claim
) -> str:
    async with a.pool.connection() as conn:
        await queue.hand_back(conn, [claim], daemon_id=a.id)
    return "PENDING"


@pytest.mark.parametrize("lose", [taken_over, cancelled, replaced, handed_back])
async def test_a_daemon_that_lost_a_run_cannot_write_its_result(
    database_url: str, db: psycopg.AsyncConnection, lose: Loss
) -> None:
    """The late SUCCEEDED of the old holder is refused by the fence; the run
    stays as whatever replaced it."""
    await insert_job(
        db,
        schedule=Schedule(kind="at", at=await db_now(db)),
        action=webhook("http://127.0.0.1:9/unused"),
    )
    holding = asyncio.Event()

    async def hold(claim: Claim) -> Outcome:
        await holding.wait()
        raise AssertionError("never released")

    a = Worker(settings_for(database_url), perform_run=hold)
    await a.start()
    try:
        await a.run_once()
        [run] = a.in_flight.values()
        expected = await lose(database_url, db, a, run.claim)

        late = outcome(run.claim, a.settings, duration=1.0, error=None)
        async with a.pool.connection() as conn:
            accepted = await queue.finish(conn, [late])
        run.task.cancel()
    finally:
        await a.http.aclose()
        await a.pool.close()

    assert accepted == set()
    [execution] = await executions_of(db, run.claim.job_id)
    assert execution["status"] == expected
    assert execution["fence"] > run.claim.fence
