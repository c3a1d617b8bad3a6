"""The API's reads and writes, one function per query, over an AsyncSession.

Callers own the transaction. Every "now" comes from ``tickwork_now()``, the
database clock that the daemons also use, never from this process's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.pagination import Cursor
from shared.models import (
    Attempt,
    Daemon,
    Execution,
    ExecutionStatus,
    Job,
    JobState,
    Trigger,
)

WAKEUP_CHANNEL = "tickwork_wakeup"

# Executions re-read after the live-update connection was lost: at most this many.
RESYNC_LIMIT = 200


async def db_now(session: AsyncSession) -> datetime:
    """The database clock, as the daemons see it."""
    return await session.scalar(select(sa.func.tickwork_now()))


async def wake_daemons(session: AsyncSession) -> None:
    """Ask every daemon to look at the jobs again when this transaction commits."""
    await session.scalar(select(sa.func.pg_notify(WAKEUP_CHANNEL, "")))


async def get_job(
    session: AsyncSession, job_id: uuid.UUID, *, for_update: bool = False
) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def jobs_page(
    session: AsyncSession,
    size: int,
    after: Cursor | None,
    *,
    name: str | None = None,
    state: JobState | None = None,
) -> Sequence[Job]:
    """Up to ``size + 1`` jobs, newest first; the extra row says a next page exists.

    ``name`` keeps jobs whose name contains it, ignoring case; ``state`` keeps
    jobs in that state.
    """
    query = select(Job)
    if name:
        # autoescape: % and _ in the text match themselves, not anything.
        query = query.where(col(Job.name).icontains(name, autoescape=True))
    if state is not None:
        query = query.where(col(Job.state) == state)
    if after is not None:
        query = query.where(
            sa.tuple_(col(Job.created_at), col(Job.id))
            < sa.tuple_(sa.literal(after.created_at), sa.literal(after.id))
        )
    query = query.order_by(col(Job.created_at).desc(), col(Job.id).desc())
    return (await session.exec(query.limit(size + 1))).all()


async def executions_page(
    session: AsyncSession, job_id: uuid.UUID, size: int, after: Cursor | None
) -> Sequence[Execution]:
    """Up to ``size + 1`` of a job's executions, newest first."""
    query = select(Execution).where(Execution.job_id == job_id)
    if after is not None:
        query = query.where(
            sa.tuple_(col(Execution.created_at), col(Execution.id))
            < sa.tuple_(sa.literal(after.created_at), sa.literal(after.id))
        )
    query = query.order_by(col(Execution.created_at).desc(), col(Execution.id).desc())
    return (await session.exec(query.limit(size + 1))).all()


async def get_execution(
    session: AsyncSession, execution_id: uuid.UUID
) -> Execution | None:
    return await session.get(Execution, execution_id)


async def executions_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> Sequence[Execution]:
    query = select(Execution).where(col(Execution.id).in_(ids))
    return (await session.exec(query)).all()


async def last_executions(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Execution]:
    """The newest execution of each job that has one, in one query."""
    query = (
        select(Execution)
        .where(col(Execution.job_id).in_(job_ids))
        .ext(distinct_on(col(Execution.job_id)))
        .order_by(
            col(Execution.job_id),
            col(Execution.created_at).desc(),
            col(Execution.id).desc(),
        )
    )
    return {row.job_id: row for row in (await session.exec(query)).all()}


async def recent_runs(
    session: AsyncSession, job_ids: Sequence[uuid.UUID], count: int
) -> dict[uuid.UUID, list[Execution]]:
    """Each job's ``count`` newest executions, newest first, in one query.

    A LATERAL subquery per job walks ix_executions_job_history backwards, so a
    job with a long history costs no more than one with a short one.
    """
    wanted = (
        sa.func.unnest(sa.literal(list(job_ids), ARRAY(sa.Uuid)))
        .table_valued("job_id")
        .render_derived()
    )
    newest = (
        select(Execution)
        .where(col(Execution.job_id) == wanted.c.job_id)
        .order_by(col(Execution.created_at).desc(), col(Execution.id).desc())
        .limit(count)
        .lateral("newest")
    )
    runs = aliased(Execution, newest)
    query = select(runs).select_from(wanted).join(newest, sa.true())
    grouped: dict[uuid.UUID, list[Execution]] = {}
    for row in (await session.exec(query)).all():
        grouped.setdefault(row.job_id, []).append(row)
    for rows in grouped.values():
        rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    return grouped


async def attempts_of(
    session: AsyncSession, execution_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Attempt]]:
    """Each execution's attempts in order, in one query."""
    query = (
        select(Attempt)
        .where(col(Attempt.execution_id).in_(execution_ids))
        .order_by(col(Attempt.execution_id), col(Attempt.number))
    )
    grouped: dict[uuid.UUID, list[Attempt]] = {}
    for row in (await session.exec(query)).all():
        grouped.setdefault(row.execution_id, []).append(row)
    return grouped


async def recent_executions(
    session: AsyncSession, job_id: uuid.UUID | None, since: datetime
) -> tuple[Sequence[Execution], datetime]:
    """Executions that may have changed since ``since``, and the time now.

    Used after live updates were interrupted: the unfinished ones, and those
    created, started or finished since, newest first and at most RESYNC_LIMIT.
    """
    now = await db_now(session)
    changed_at = sa.func.greatest(
        col(Execution.created_at), col(Execution.started_at), col(Execution.finished_at)
    )
    unfinished = col(Execution.status).in_(
        [ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.RETRYING]
    )
    query = select(Execution).where(sa.or_(unfinished, changed_at >= since))
    if job_id is not None:
        query = query.where(Execution.job_id == job_id)
    query = query.order_by(col(Execution.created_at).desc()).limit(RESYNC_LIMIT)
    return (await session.exec(query)).all(), now


async def upsert_job(
    session: AsyncSession, values: dict[str, Any], *, keep_signing: bool = False
) -> Job:
    """Insert a job; with a ``key`` that exists, update that job in place instead.

    One statement, so two deploy scripts racing on the same key end with one row.
    A job someone paused stays paused when its definition is applied again.
    With ``keep_signing``, a job that has signing secrets keeps them, and the
    ones in ``values`` only go to a new job or one that had none.
    """
    statement = insert(Job).values(id=uuid.uuid4(), **values)
    if values.get("key") is not None:
        table = Job.__table__
        excluded = statement.excluded
        keep_paused = sa.and_(
            table.c.state == JobState.PAUSED.value,
            excluded.state == JobState.ACTIVE.value,
        )
        updates = {name: excluded[name] for name in values if name != "key"}
        updates["state"] = sa.case((keep_paused, table.c.state), else_=excluded.state)
        updates["state_reason"] = sa.case(
            (keep_paused, table.c.state_reason), else_=excluded.state_reason
        )
        updates["updated_at"] = sa.func.tickwork_now()
        if keep_signing and "signing_secrets" in values:
            updates["signing_secrets"] = sa.func.coalesce(
                table.c.signing_secrets, excluded.signing_secrets
            )
        statement = statement.on_conflict_do_update(
            index_elements=["key"], set_=updates
        )
    statement = statement.returning(Job)
    result = await session.exec(
        select(Job).from_statement(statement)  # map the RETURNING row to a Job
    )
    return result.scalars().one()


async def insert_manual_execution(
    session: AsyncSession, job_id: uuid.UUID
) -> Execution:
    """A run of the job that a daemon picks up as soon as it is free."""
    execution = Execution(
        job_id=job_id,
        trigger=Trigger.MANUAL,
        status=ExecutionStatus.PENDING,
        scheduled_for=None,
        run_at=await db_now(session),
    )
    session.add(execution)
    await session.flush()
    await session.refresh(execution)
    await announce_executions(session, [execution.id])
    return execution


async def announce_executions(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Tell every API process's live updates, at commit, that these changed."""
    connection = await session.connection()
    await connection.execute(
        sa.text("SELECT tickwork_notify_executions(CAST(:ids AS uuid[]))"),
        {"ids": list(ids)},
    )


async def cancel_executions(
    session: AsyncSession, ids: Sequence[uuid.UUID], why: str
) -> list[uuid.UUID]:
    """Cancel those of ``ids`` that are unfinished, and announce them.

    ``tickwork_cancel_executions`` also bumps their fences and tells the daemons
    holding them; it does not announce, so this transaction's one announcement
    does. Returns the ids it cancelled.
    """
    connection = await session.connection()
    result = await connection.execute(
        sa.text("SELECT tickwork_cancel_executions(CAST(:ids AS uuid[]), :why)"),
        {"ids": list(ids), "why": why},
    )
    cancelled = list(result.scalars())
    if cancelled:
        await announce_executions(session, cancelled)
    return cancelled


async def retry_execution(
    session: AsyncSession, execution_id: uuid.UUID, why: str
) -> Execution | None:
    """Make a FAILED or CANCELLED execution due again now, and announce it.

    One statement: it becomes PENDING at ``tickwork_now()`` with its failures
    reset, so it gets every retry again, and its fence moves on, so nothing
    that a daemon which held it before writes can count. Its attempts and
    their numbering are kept. Returns None when the execution does not exist or
    has another status; nothing changes then.
    """
    retryable = [ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value]
    statement = (
        sa.update(Execution)
        .where(col(Execution.id) == execution_id, col(Execution.status).in_(retryable))
        .values(
            status=ExecutionStatus.PENDING.value,
            run_at=sa.func.tickwork_now(),
            failures=0,
            fence=col(Execution.fence) + 1,
            reason=why,
            daemon_id=None,
            lease_expires_at=None,
            finished_at=None,
        )
        .returning(Execution)
    )
    result = await session.exec(
        select(Execution)
        .from_statement(statement)  # map the RETURNING row to an Execution
        .execution_options(populate_existing=True)
    )
    row = result.scalars().first()
    if row is not None:
        await announce_executions(session, [row.id])
    return row


async def delete_job(session: AsyncSession, job_id: uuid.UUID) -> bool:
    statement = sa.delete(Job).where(col(Job.id) == job_id).returning(col(Job.id))
    return (await session.exec(statement)).first() is not None


async def list_daemons(session: AsyncSession) -> Sequence[Daemon]:
    query = select(Daemon).order_by(col(Daemon.started_at).desc(), col(Daemon.id))
    return (await session.exec(query)).all()


async def runs_in_flight(session: AsyncSession) -> dict[uuid.UUID, int]:
    """How many RUNNING executions each daemon holds, for daemons holding any."""
    query = (
        select(col(Execution.daemon_id), sa.func.count())
        .where(col(Execution.status) == ExecutionStatus.RUNNING)
        .where(col(Execution.daemon_id).is_not(None))
        .group_by(col(Execution.daemon_id))
    )
    return {daemon_id: count for daemon_id, count in (await session.exec(query)).all()}
