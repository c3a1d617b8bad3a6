"""Retention: which finished executions pruning deletes, and that it never waits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from api_helpers import api_client, count_rows, graphql, interval_job
from psycopg_pool import AsyncConnectionPool

from daemon.maintenance import SECONDS_PER_DAY, Pruner, prune, prune_alerts
from shared.actions import Action
from shared.schedule import Schedule
from tests.support.daemons import database_name, settings_for
from tests.support.jobs import insert_job, shift_clock

DAYS_30 = 30 * SECONDS_PER_DAY
UNFINISHED = ("PENDING", "RUNNING", "RETRYING")


async def _job(db: psycopg.AsyncConnection, **columns: object) -> uuid.UUID:
    return await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=60),
        action=Action(kind="fetch"),
        **columns,
    )


async def _execution(
    db: psycopg.AsyncConnection,
    job_id: uuid.UUID,
    *,
    status: str = "SUCCEEDED",
    days_ago: float,
    attempts: int = 0,
) -> uuid.UUID:
    """An execution created and (unless unfinished) finished ``days_ago``."""
    execution_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO executions (id, job_id, trigger, status, run_at, attempt,"
        " failures, fence, created_at, finished_at)"
        " SELECT %(id)s, %(job)s, 'MANUAL', %(status)s, t, %(attempts)s, 0, 0, t,"
        "   CASE WHEN %(finished)s THEN t END"
        " FROM (SELECT tickwork_now() - make_interval(secs => %(age)s) AS t) s",
        {
            "id": execution_id,
            "job": job_id,
            "status": status,
            "attempts": attempts,
            "finished": status not in UNFINISHED,
            "age": days_ago * SECONDS_PER_DAY,
        },
    )
    for number in range(1, attempts + 1):
        await db.execute(
            "INSERT INTO attempts (execution_id, number, outcome, started_at,"
            " finished_at) VALUES (%s, %s, 'FAILED', tickwork_now(), tickwork_now())",
            (execution_id, number),
        )
    return execution_id


async def _ids(db: psycopg.AsyncConnection, job_id: uuid.UUID) -> set[uuid.UUID]:
    cur = await db.execute("SELECT id FROM executions WHERE job_id = %s", (job_id,))
    return {row[0] for row in await cur.fetchall()}


@asynccontextmanager
async def _connection(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A new session, so that it sees the clock as the database now sets it."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        yield conn


async def test_executions_finished_before_the_age_limit_are_deleted_by_db_clock(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """With the clock moved 15 days on, a run that finished 20 days ago is past
    30 days and goes, with its attempts; one that finished today stays."""
    job_id = await _job(db)
    old = await _execution(db, job_id, status="FAILED", days_ago=20, attempts=2)
    recent = await _execution(db, job_id, days_ago=0)

    async with _connection(database_url) as conn:
        assert await prune(conn, max_age_seconds=DAYS_30) == 0
    await shift_clock(db, database_name(database_url), "15 days")
    async with _connection(database_url) as conn:
        deleted = await prune(conn, max_age_seconds=DAYS_30)

    assert deleted == 1
    assert await _ids(db, job_id) == {recent}
    cur = await db.execute(
        "SELECT count(*) FROM attempts WHERE execution_id = %s", (old,)
    )
    assert (await cur.fetchone())[0] == 0


async def test_every_final_status_is_pruned_and_no_unfinished_one(
    db: psycopg.AsyncConnection,
) -> None:
    """Old SUCCEEDED, FAILED, SKIPPED, MISSED and CANCELLED runs go; PENDING,
    RUNNING and RETRYING runs of the same age stay, as does the newest run."""
    job_id = await _job(db)
    for status in ("SUCCEEDED", "FAILED", "SKIPPED", "MISSED", "CANCELLED"):
        await _execution(db, job_id, status=status, days_ago=60)
    kept = {await _execution(db, job_id, status=s, days_ago=50) for s in UNFINISHED}
    kept.add(await _execution(db, job_id, days_ago=40))

    deleted = await prune(db, max_age_seconds=DAYS_30)

    assert deleted == 5
    assert await _ids(db, job_id) == kept


async def test_a_jobs_newest_execution_is_kept_however_old(
    db: psycopg.AsyncConnection,
) -> None:
    """A job whose runs all finished long ago keeps its last one, so it still
    shows how that run went."""
    job_id = await _job(db)
    await _execution(db, job_id, days_ago=90)
    newest = await _execution(db, job_id, status="FAILED", days_ago=80)

    assert await prune(db, max_age_seconds=DAYS_30) == 1
    assert await _ids(db, job_id) == {newest}


async def test_an_age_of_zero_keeps_executions_forever(
    db: psycopg.AsyncConnection,
) -> None:
    """max_age_seconds 0 (retention_days 0) deletes nothing by age."""
    job_id = await _job(db)
    for days in (400, 300, 200):
        await _execution(db, job_id, days_ago=days)

    assert await prune(db, max_age_seconds=0) == 0
    assert len(await _ids(db, job_id)) == 3


async def test_keep_executions_keeps_a_jobs_newest_finished_runs_at_any_age(
    db: psycopg.AsyncConnection,
) -> None:
    """keep_executions 3 keeps that job's 3 newest finished runs, even older than
    the age limit, and its unfinished one; another job follows the age rule."""
    counted = await _job(db, keep_executions=3)
    aged = await _job(db)
    runs = [await _execution(db, counted, days_ago=100 - day) for day in range(8)]
    waiting = await _execution(db, counted, status="RETRYING", days_ago=1)
    young = [await _execution(db, aged, days_ago=day) for day in (3, 2, 1)]

    deleted = await prune(db, max_age_seconds=DAYS_30)

    assert deleted == 5
    assert await _ids(db, counted) == {*runs[-3:], waiting}
    assert await _ids(db, aged) == set(young)


async def test_keep_executions_applies_when_the_age_rule_is_off(
    db: psycopg.AsyncConnection,
) -> None:
    """With retention_days 0, a job's keep_executions still trims its history."""
    job_id = await _job(db, keep_executions=1)
    runs = [await _execution(db, job_id, days_ago=day) for day in (3, 2, 1)]

    assert await prune(db, max_age_seconds=0) == 2
    assert await _ids(db, job_id) == {runs[-1]}


async def test_pruning_goes_through_many_small_batches(
    db: psycopg.AsyncConnection,
) -> None:
    """Seven old runs with a batch of 2 take four transactions, and all go."""
    job_id = await _job(db)
    for day in range(7):
        await _execution(db, job_id, days_ago=60 + day)
    newest = await _execution(db, job_id, days_ago=1)

    assert await prune(db, max_age_seconds=DAYS_30, batch=2) == 7
    assert await _ids(db, job_id) == {newest}


async def test_a_locked_execution_is_skipped_not_waited_for(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """Another transaction holds one old run FOR UPDATE: pruning deletes the
    others at once, and the held one on a pass after it is released."""
    job_id = await _job(db)
    held = await _execution(db, job_id, status="FAILED", days_ago=60)
    other = await _execution(db, job_id, days_ago=61)
    await _execution(db, job_id, days_ago=1)

    async with _connection(database_url) as holder:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM executions WHERE id = %s FOR UPDATE", (held,)
            )
            async with asyncio.timeout(5):
                assert await prune(db, max_age_seconds=DAYS_30) == 1
            assert other not in await _ids(db, job_id)
        assert await prune(db, max_age_seconds=DAYS_30) == 1
    assert held not in await _ids(db, job_id)


async def test_a_pruner_pass_reads_retention_days_from_its_settings(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """Pruner.run_once with retention_days 7 deletes a run 8 days old, not 6."""
    job_id = await _job(db)
    await _execution(db, job_id, days_ago=8)
    kept = {await _execution(db, job_id, days_ago=days) for days in (6, 1)}
    settings = settings_for(database_url, retention_days=7)

    async with AsyncConnectionPool(
        database_url,
        min_size=1,
        max_size=2,
        kwargs={"autocommit": True},
        open=False,
    ) as pool:
        deleted = await Pruner(settings, pool, batch=1).run_once()

    assert deleted == 1
    assert await _ids(db, job_id) == kept


KEEP = """
mutation ($input: CreateJobInput!) {
  createJob(input: $input) {
    __typename
    ... on Job { id policies { keepExecutions } }
    ... on InvalidInput { errors { field message } }
  }
}
"""
UPDATE_KEEP = """
mutation ($id: ID!, $keep: Int) {
  updateJob(id: $id, input: {policies: {keepExecutions: $keep}}) {
    ... on Job { policies { keepExecutions } }
  }
}
"""
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { ... on Execution { id } } }"


async def _prune_in(database_url: str) -> int:
    async with _connection(database_url) as conn:
        return await prune(conn, max_age_seconds=DAYS_30)


def test_keep_executions_set_through_the_api_is_what_pruning_keeps(
    database_url: str,
) -> None:
    """createJob with keepExecutions 2 reads back 2, and pruning then leaves that
    job its 2 newest finished runs of 4."""
    with api_client(database_url) as client:
        job = graphql(
            client, KEEP, {"input": interval_job(policies={"keepExecutions": 2})}
        )
        job = job["createJob"]
        runs = [
            graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]["id"]
            for _ in range(4)
        ]
    with psycopg.connect(database_url) as conn:
        for minutes, run in enumerate(reversed(runs)):
            conn.execute(
                "UPDATE executions SET status = 'SUCCEEDED',"
                " finished_at = tickwork_now() - make_interval(mins => %s)"
                " WHERE id = %s",
                (minutes, run),
            )

    assert job["policies"] == {"keepExecutions": 2}
    assert asyncio.run(_prune_in(database_url)) == 2
    assert count_rows(database_url, "executions") == 2


def test_keep_executions_defaults_to_null_and_null_restores_it(
    database_url: str,
) -> None:
    """Left out, keepExecutions is null (the global rule); updateJob with null
    sets a job's back to it."""
    with api_client(database_url) as client:
        plain = graphql(client, KEEP, {"input": interval_job()})["createJob"]
        kept = graphql(client, UPDATE_KEEP, {"id": plain["id"], "keep": 100_000})[
            "updateJob"
        ]
        cleared = graphql(client, UPDATE_KEEP, {"id": plain["id"], "keep": None})

    assert plain["policies"] == {"keepExecutions": None}
    assert kept["policies"] == {"keepExecutions": 100_000}
    assert cleared["updateJob"]["policies"] == {"keepExecutions": None}


@pytest.mark.parametrize("keep", [0, -1, 100_001])
def test_keep_executions_out_of_range_is_refused_by_name(
    database_url: str, keep: int
) -> None:
    """keepExecutions outside 1 to 100000 is InvalidInput on its field; no job."""
    with api_client(database_url) as client:
        result = graphql(
            client, KEEP, {"input": interval_job(policies={"keepExecutions": keep})}
        )["createJob"]

    assert result["__typename"] == "InvalidInput"
    assert result["errors"] == [
        {
            "field": "policies.keepExecutions",
            "message": "must be 1 to 100000, or null",
        }
    ]
    assert count_rows(database_url, "jobs") == 0


async def test_settled_alerts_are_pruned_with_the_history_and_pending_ones_kept(
    db: psycopg.AsyncConnection,
) -> None:
    """Alerts sent or given up on go after the retention age; unsent ones stay."""
    job_id = await _job(db)
    await db.execute(
        "INSERT INTO alerts (job_id, kind, payload, created_at, next_attempt_at)"
        " VALUES"
        " (%(job)s, 'EXECUTION_FAILED', '{}', tickwork_now() - interval '31 days',"
        "  NULL),"
        " (%(job)s, 'EXECUTION_FAILED', '{}', tickwork_now() - interval '31 days',"
        "  tickwork_now()),"
        " (%(job)s, 'EXECUTION_FAILED', '{}', tickwork_now() - interval '1 day',"
        "  NULL)",
        {"job": job_id},
    )

    deleted = await prune_alerts(db, max_age_seconds=DAYS_30)

    cur = await db.execute(
        "SELECT next_attempt_at IS NULL,"
        " created_at < tickwork_now() - interval '2 days'"
        " FROM alerts ORDER BY created_at"
    )
    assert deleted == 1
    # Left: the old one still waiting to be sent, and the recent settled one.
    assert sorted(await cur.fetchall()) == [(False, True), (True, False)]
