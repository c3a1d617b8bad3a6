"""Creating jobs straight in the database, for tests of the daemon alone."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.actions import Action
from shared.schedule import Schedule, first_fire_time


async def db_now(db: psycopg.AsyncConnection) -> datetime:
    cur = await db.execute("SELECT tickwork_now()")
    row = await cur.fetchone()
    return row[0]


async def insert_job(
    db: psycopg.AsyncConnection,
    *,
    schedule: Schedule,
    action: Action,
    payload: Any = None,
    max_retries: int = 3,
    timeout_seconds: float = 5.0,
    name: str = "test job",
    next_run_at: datetime | None = None,
    **policies: Any,
) -> uuid.UUID:
    """Insert an ACTIVE job; its first run is due at its start, or now.

    ``policies`` are job columns such as ``overlap="REPLACE"``.
    """
    job_id = uuid.uuid4()
    if next_run_at is None:
        next_run_at = first_fire_time(schedule, schedule.start_at or await db_now(db))
    columns = {
        "id": job_id,
        "name": name,
        "schedule": Jsonb(schedule.model_dump(mode="json")),
        "action": Jsonb(action.model_dump(mode="json")),
        "payload": Jsonb(payload),
        "max_retries": max_retries,
        "timeout_seconds": timeout_seconds,
        "state": "ACTIVE",
        "next_run_at": next_run_at,
        **policies,
    }
    names = ", ".join(columns)
    values = ", ".join(f"%({name})s" for name in columns)
    await db.execute(f"INSERT INTO jobs ({names}) VALUES ({values})", columns)
    return job_id


async def executions_of(
    db: psycopg.AsyncConnection, job_id: uuid.UUID
) -> list[dict[str, Any]]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute(
        "SELECT * FROM executions WHERE job_id = %s "
        "ORDER BY created_at, scheduled_for NULLS LAST, id",
        (job_id,),
    )
    return await cur.fetchall()


async def attempts_of(
    db: psycopg.AsyncConnection, execution_id: uuid.UUID
) -> list[dict[str, Any]]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute(
        "SELECT * FROM attempts WHERE execution_id = %s ORDER BY number",
        (execution_id,),
    )
    return await cur.fetchall()


async def shift_clock(db: psycopg.AsyncConnection, database: str, offset: str) -> None:
    """Move the database clock (tickwork_now) for every new connection.

    Connections already open, pooled ones included, keep the old offset: start
    a new daemon (or connection) after shifting.
    """
    await db.execute(
        f"ALTER DATABASE \"{database}\" SET tickwork.clock_offset = '{offset}'"
    )
