"""Retention: deletes finished executions that are past their keep.

A job with ``keep_executions`` keeps its newest that many finished executions,
however old; any other job keeps its finished executions for the global
``retention_days``, by when they finished. Unfinished executions are never
deleted, nor a job's newest execution (the one its page shows last), so a job
that ran long ago still shows how that run went. Attempts go with their
execution (ON DELETE CASCADE).

Deleting happens in small batches, each one statement and so its own short
transaction, and rows are taken with ``FOR UPDATE SKIP LOCKED``: pruning never
waits on a daemon or the API, and any number of daemons may prune at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.settings import Settings

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0

# A row's final status must match ix_executions_finished's predicate word for
# word, or the planner cannot use that index.
FINAL = "('SUCCEEDED', 'FAILED', 'SKIPPED', 'MISSED', 'CANCELLED')"

# Candidates are read per job through ix_executions_finished, skipping each
# job's newest execution. The locking step re-checks the status and finish time
# on the current row version, so a run retried meanwhile (back to PENDING) or
# finished again is left alone.
PRUNE_BATCH = f"""
WITH aged AS (
    SELECT x.id, x.finished_at
    FROM jobs j CROSS JOIN LATERAL (
        SELECT e.id, e.finished_at FROM executions e
        WHERE e.job_id = j.id AND e.status IN {FINAL}
          AND e.finished_at < tickwork_now() - make_interval(secs => %(max_age)s)
          AND EXISTS (
              SELECT 1 FROM executions n
              WHERE n.job_id = e.job_id
                AND (n.created_at, n.id) > (e.created_at, e.id)
          )
        ORDER BY e.finished_at
        LIMIT %(batch)s
    ) x
    WHERE j.keep_executions IS NULL AND %(max_age)s > 0
    LIMIT %(batch)s
), surplus AS (
    SELECT x.id, x.finished_at
    FROM jobs j CROSS JOIN LATERAL (
        SELECT e.id, e.finished_at, e.created_at FROM executions e
        WHERE e.job_id = j.id AND e.status IN {FINAL}
        ORDER BY e.finished_at DESC NULLS FIRST
        OFFSET j.keep_executions
        LIMIT %(batch)s
    ) x
    WHERE j.keep_executions IS NOT NULL
      AND EXISTS (
          SELECT 1 FROM executions n
          WHERE n.job_id = j.id AND (n.created_at, n.id) > (x.created_at, x.id)
      )
    LIMIT %(batch)s
), candidates AS (
    SELECT * FROM aged UNION ALL SELECT * FROM surplus
), doomed AS (
    SELECT e.id FROM executions e JOIN candidates c ON c.id = e.id
    WHERE e.status IN {FINAL} AND e.finished_at IS NOT DISTINCT FROM c.finished_at
    LIMIT %(batch)s
    FOR UPDATE OF e SKIP LOCKED
)
DELETE FROM executions WHERE id IN (SELECT id FROM doomed)
"""


# Alerts that were sent, or given up on, go once they are as old as the history.
PRUNE_ALERTS = """
DELETE FROM alerts WHERE id IN (
    SELECT id FROM alerts
    WHERE next_attempt_at IS NULL
      AND created_at < tickwork_now() - make_interval(secs => %(max_age)s)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
"""


async def prune_alerts(
    conn: psycopg.AsyncConnection, *, max_age_seconds: float, batch: int = 1000
) -> int:
    """Delete up to ``batch`` settled alerts older than ``max_age_seconds`` (0:
    keep them); returns how many."""
    if max_age_seconds <= 0:
        return 0
    async with conn.transaction():
        cur = await conn.execute(
            PRUNE_ALERTS, {"max_age": max_age_seconds, "batch": batch}
        )
        return cur.rowcount


async def prune_batch(
    conn: psycopg.AsyncConnection, *, max_age_seconds: float, batch: int = 1000
) -> int:
    """Delete up to ``batch`` executions past their retention in one statement.

    ``max_age_seconds`` of 0 turns the age rule off; per-job limits still apply.
    Returns how many were deleted.
    """
    async with conn.transaction():
        cur = await conn.execute(
            PRUNE_BATCH, {"max_age": max(max_age_seconds, 0.0), "batch": batch}
        )
        return cur.rowcount


async def prune(
    conn: psycopg.AsyncConnection, *, max_age_seconds: float, batch: int = 1000
) -> int:
    """Delete every execution past its retention, ``batch`` rows a transaction.

    Stops when a batch comes back short: the rest is locked by someone else or
    does not exist, and the next pass takes it. ``conn`` must not be inside a
    transaction, or the batches would all become one long one. Returns how
    many executions were deleted.
    """
    total = 0
    while True:
        deleted = await prune_batch(conn, max_age_seconds=max_age_seconds, batch=batch)
        total += deleted
        if deleted < batch:
            return total


class Pruner:
    """A daemon's retention service: one pass every ``prune_seconds``."""

    def __init__(
        self, settings: Settings, pool: AsyncConnectionPool, *, batch: int = 1000
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.batch = batch

    @property
    def max_age_seconds(self) -> float:
        return self.settings.retention_days * SECONDS_PER_DAY

    async def run_once(self) -> int:
        """Prune everything due now; returns how many executions were deleted.

        Each batch borrows a pool connection only for its own statement, so a
        long first pass does not keep one from the claim and heartbeat loops.
        """
        began = time.monotonic()
        total = 0
        while True:
            async with self.pool.connection() as conn:
                deleted = await prune_batch(
                    conn, max_age_seconds=self.max_age_seconds, batch=self.batch
                )
            total += deleted
            if deleted < self.batch:
                break
        while True:
            async with self.pool.connection() as conn:
                alerts = await prune_alerts(
                    conn, max_age_seconds=self.max_age_seconds, batch=self.batch
                )
            if alerts < self.batch:
                break
        if total:
            logger.info(
                "executions pruned: count=%d duration_ms=%d",
                total,
                (time.monotonic() - began) * 1000,
            )
        return total

    async def run(self) -> None:
        """Prune now and then every ``prune_seconds``, until cancelled.

        A cancellation mid-batch rolls that batch back; nothing is half deleted.
        """
        while True:
            try:
                await self.run_once()
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                logger.warning("pruning paused, database unavailable: %s", exc)
            except psycopg.Error:
                # Retention is housekeeping: a failing pass must not stop the
                # daemon, and the next pass tries again.
                logger.exception("pruning failed")
            await asyncio.sleep(self.settings.prune_seconds)
