"""The pieces of riding out an outage, without stopping a server: the bound on
results kept in memory, and which errors count as a lost database."""

from __future__ import annotations

import asyncio

import psycopg
import sqlalchemy.exc

from api.context import is_lost_connection
from shared.schedule import Schedule
from tests.support.daemons import settings_for, started, webhook
from tests.support.jobs import db_now, insert_job
from tests.support.target import Target


async def test_an_unwritten_result_keeps_its_slot_until_it_is_written(
    database_url: str, db: psycopg.AsyncConnection, target: Target
) -> None:
    """Concurrency 1: a run finishes but its result is not written yet (as when
    the database is away); the next due run is not claimed until it is."""
    now = await db_now(db)
    for _ in range(2):
        await insert_job(
            db, schedule=Schedule(kind="at", at=now), action=webhook(target.url("/ok"))
        )

    async with started(settings_for(database_url, concurrency=1)) as worker:
        await worker.run_once()
        [run] = worker.in_flight.values()
        await asyncio.wait_for(run.task, 10)
        assert not worker.in_flight

        await worker.run_once()
        assert not worker.in_flight  # the finished run still holds the slot

        assert await worker.flush() == 1
        await worker.run_once()
        assert len(worker.in_flight) == 1
        await asyncio.gather(*(r.task for r in worker.in_flight.values()))
        await worker.flush()


def test_lost_connections_are_told_apart_from_failed_queries() -> None:
    """Refused connections, shutdowns and pool timeouts mean the database is
    away, also wrapped by SQLAlchemy; a cancelled query or a bug does not."""
    refused = psycopg.OperationalError("connection failed: Connection refused")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, refused)
    shutting_down = psycopg.errors.AdminShutdown("terminating connection")
    cancelled = psycopg.errors.QueryCanceled("canceling statement")

    assert is_lost_connection(refused)
    assert is_lost_connection(wrapped)
    assert is_lost_connection(shutting_down)
    assert is_lost_connection(sqlalchemy.exc.TimeoutError("QueuePool limit"))
    assert not is_lost_connection(cancelled)
    assert not is_lost_connection(ValueError("a bug"))
