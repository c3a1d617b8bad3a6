"""The daemon's SQL: scheduling, claiming, finishing, leases and the registry.

Every statement is batched and conditioned so that any number of daemons can run
them at once. Due-ness and leases read ``tickwork_now()``, the database clock.
Writes by the holder of a run are fenced: they only apply while the run's
``fence`` is the one the holder claimed it with, so a daemon that lost a run
(its lease expired and another took it over, or it was handed back) cannot
overwrite what replaced it.

Each transaction that changes execution statuses ends with one call of
``tickwork_notify_executions`` with the ids it changed, which feeds the API's
live updates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared.firing import Firing, Policies, plan_firing
from shared.models import CatchUp, Overlap
from shared.schedule import Schedule

LOCK_DUE_JOBS = """
SELECT j.id, j.schedule, j.next_run_at, j.catch_up, j.catch_up_limit,
    j.misfire_grace_seconds, j.overlap, j.max_in_flight, j.jitter_seconds,
    (SELECT count(*) FROM executions e
     WHERE e.job_id = j.id AND e.status IN ('PENDING', 'RUNNING', 'RETRYING')
    ) AS unfinished,
    tickwork_now() AS now
FROM jobs j
WHERE j.state = 'ACTIVE' AND j.next_run_at <= tickwork_now()
ORDER BY j.next_run_at
LIMIT %(limit)s
FOR UPDATE OF j SKIP LOCKED
"""

# REPLACE: cancels the unfinished executions of jobs about to fire again.
REPLACE_UNFINISHED = """
SELECT tickwork_cancel_executions(
    array(
        SELECT id FROM executions
        WHERE job_id = ANY(%(job_ids)s::uuid[])
          AND status IN ('PENDING', 'RUNNING', 'RETRYING')
    ),
    'replaced by a newer run (overlap REPLACE)'
) AS id
"""

# Advances each locked job and inserts its occurrences: runs (PENDING), and the
# fire times recorded as SKIPPED or MISSED. A fire time that already has an
# execution (unique per job) is never inserted twice. Each MISSED one also
# queues an alert when a URL applies: the job's, else the daemon's (alert_url).
FIRE_JOBS = """
WITH advanced AS (
    UPDATE jobs j
    SET next_run_at = t.next_run_at,
        updated_at = tickwork_now(),
        state = CASE WHEN t.complete THEN 'COMPLETED' ELSE j.state END,
        state_reason = CASE WHEN t.complete THEN 'no fire times left'
            ELSE j.state_reason END
    FROM unnest(
        %(job_ids)s::uuid[], %(next_run_ats)s::timestamptz[], %(completes)s::boolean[]
    ) AS t(id, next_run_at, complete)
    WHERE j.id = t.id
), fired AS (
    INSERT INTO executions (id, job_id, scheduled_for, run_at, trigger, status,
        attempt, failures, fence, covers, reason, finished_at)
    SELECT gen_random_uuid(), o.job_id, o.scheduled_for, o.run_at, 'SCHEDULE',
        o.status, 0, 0, 0, o.covers, o.reason,
        CASE WHEN o.status = 'PENDING' THEN NULL ELSE tickwork_now() END
    FROM unnest(
        %(occurrence_jobs)s::uuid[], %(scheduled_fors)s::timestamptz[],
        %(run_ats)s::timestamptz[], %(statuses)s::text[], %(covers)s::int[],
        %(reasons)s::text[]
    ) AS o(job_id, scheduled_for, run_at, status, covers, reason)
    ON CONFLICT (job_id, scheduled_for) DO NOTHING
    RETURNING id, job_id, status, scheduled_for, covers, reason
), missed_alerts AS (
    INSERT INTO alerts (job_id, execution_id, kind, payload)
    SELECT f.job_id, f.id, 'FIRE_TIMES_MISSED', jsonb_build_object(
        'type', 'FIRE_TIMES_MISSED', 'job_id', f.job_id, 'job_name', j.name,
        'execution_id', f.id, 'scheduled_for', f.scheduled_for,
        'error', NULL::text, 'reason', f.reason, 'covers', f.covers,
        'occurred_at', tickwork_now())
    FROM fired f JOIN jobs j ON j.id = f.job_id
    WHERE f.status = 'MISSED'
      AND coalesce(j.alert_url, %(alert_url)s::text) IS NOT NULL
)
SELECT id FROM fired
"""

# Claims due runs and runs whose lease expired (their daemon stopped renewing).
# Each claim bumps the fence. A takeover records the lost attempt as ABANDONED;
# it does not count as a failure, so it uses up no retry.
CLAIM = """
WITH due AS (
    SELECT id FROM executions
    WHERE status IN ('PENDING', 'RETRYING') AND run_at <= tickwork_now()
    ORDER BY run_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id FROM executions
    WHERE status = 'RUNNING' AND lease_expires_at < tickwork_now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT e.id, e.status, e.attempt, e.daemon_id, e.started_at
    FROM executions e
    WHERE e.id IN (SELECT id FROM due UNION ALL SELECT id FROM expired)
    ORDER BY e.run_at
    LIMIT %(limit)s
), abandoned AS (
    INSERT INTO attempts
        (execution_id, number, daemon_id, outcome, started_at, finished_at, error)
    SELECT id, attempt, daemon_id, 'ABANDONED', started_at, tickwork_now(),
        'lease expired: its daemon stopped renewing it'
    FROM picked
    WHERE status = 'RUNNING'
    ON CONFLICT (execution_id, number) DO NOTHING
), claimed AS (
    UPDATE executions e
    SET status = 'RUNNING',
        attempt = e.attempt + 1,
        fence = e.fence + 1,
        daemon_id = %(daemon_id)s,
        lease_expires_at = tickwork_now() + make_interval(secs => %(lease)s),
        started_at = tickwork_now(),
        finished_at = NULL
    FROM picked
    WHERE e.id = picked.id
    RETURNING e.id, e.job_id, e.attempt, e.failures, e.fence, e.trigger,
        e.scheduled_for, e.started_at, e.run_at
)
SELECT c.*, j.name AS job_name, j.action, j.payload, j.max_retries,
    j.timeout_seconds, j.retry_base_seconds, j.retry_max_seconds,
    j.secret_headers, j.signing_secrets, j.signing_previous_until, j.client_key
FROM claimed c JOIN jobs j ON j.id = c.job_id
"""

# Locks the jobs of a batch of finished attempts, in one order, before FINISH
# touches their executions. A job's row is locked before its executions'
# everywhere else (deleteJob, whose delete cascades to them; triggerJob; the
# firing of due jobs); FINISH updating the executions first and the jobs after
# would deadlock with a deleteJob taking the same two rows the other way round.
LOCK_FINISHING_JOBS = """
SELECT j.id FROM jobs j
WHERE j.id IN (SELECT job_id FROM executions WHERE id = ANY(%(ids)s::uuid[]))
ORDER BY j.id
FOR NO KEY UPDATE OF j
"""

# Writes a batch of finished attempts. Rows whose fence moved on are skipped:
# the RETURNING list tells the caller which results were accepted. A job with
# no fire time left completes once nothing of it is outstanding. A FAILED
# execution and a job pausing itself each queue an alert when a URL applies:
# the job's, else the daemon's (alert_url).
FINISH = """
WITH input AS (
    SELECT * FROM unnest(
        %(ids)s::uuid[], %(fences)s::bigint[], %(statuses)s::text[],
        %(failed)s::boolean[], %(retry_delays)s::float8[], %(durations)s::float8[],
        %(http_statuses)s::int[], %(results)s::jsonb[], %(errors)s::text[],
        %(excerpts)s::text[]
    ) AS t(id, fence, status, failed, retry_delay, duration, http_status, result,
        error, excerpt)
), done AS (
    UPDATE executions e
    SET status = i.status,
        failures = e.failures + i.failed::int,
        run_at = CASE WHEN i.status = 'RETRYING'
            THEN tickwork_now() + make_interval(secs => i.retry_delay)
            ELSE e.run_at END,
        finished_at = CASE WHEN i.status = 'RETRYING' THEN NULL
            ELSE e.started_at + make_interval(secs => i.duration) END,
        lease_expires_at = NULL,
        http_status = i.http_status,
        result = i.result,
        error = i.error
    FROM input i
    WHERE e.id = i.id AND e.fence = i.fence AND e.status = 'RUNNING'
    RETURNING e.id, e.job_id, e.status, e.attempt, e.daemon_id, e.started_at,
        e.scheduled_for,
        e.started_at + make_interval(secs => i.duration) AS ended_at,
        i.failed, i.http_status, i.error, i.excerpt
), recorded AS (
    INSERT INTO attempts (execution_id, number, daemon_id, outcome, started_at,
        finished_at, http_status, error, response_excerpt)
    SELECT id, attempt, daemon_id,
        CASE WHEN failed THEN 'FAILED' ELSE 'SUCCEEDED' END,
        started_at, ended_at, http_status, error, excerpt
    FROM done
    ON CONFLICT (execution_id, number) DO NOTHING
), outcomes AS (
    SELECT job_id,
        bool_or(status = 'SUCCEEDED') AS succeeded,
        count(*) FILTER (WHERE status = 'FAILED') AS failed
    FROM done
    GROUP BY job_id
), decided AS (
    -- A job completes once it has no fire time left and nothing unfinished,
    -- whether its last run failed or not: pausing it then would hold back
    -- nothing. Otherwise it pauses after pause_after_failures failed
    -- executions in a row.
    SELECT j.id,
        CASE WHEN o.succeeded THEN 0
            ELSE j.consecutive_failures + o.failed END AS failures,
        CASE
            WHEN j.state <> 'ACTIVE' THEN NULL
            WHEN j.next_run_at IS NULL AND NOT EXISTS (
                SELECT 1 FROM executions x
                WHERE x.job_id = j.id
                  AND x.status IN ('PENDING', 'RUNNING', 'RETRYING')
                  AND x.id NOT IN (SELECT id FROM done WHERE status <> 'RETRYING')
            ) THEN 'COMPLETED'
            WHEN NOT o.succeeded AND j.pause_after_failures IS NOT NULL
                AND j.consecutive_failures + o.failed >= j.pause_after_failures
                THEN 'PAUSED'
        END AS state
    FROM jobs j JOIN outcomes o ON o.job_id = j.id
), jobs_updated AS (
    UPDATE jobs j
    SET consecutive_failures = d.failures,
        state = coalesce(d.state, j.state),
        state_reason = CASE d.state
            WHEN 'PAUSED' THEN
                format('paused after %%s failed executions in a row', d.failures)
            WHEN 'COMPLETED' THEN 'no fire times left'
            ELSE j.state_reason END,
        updated_at = CASE WHEN d.state IS NULL THEN j.updated_at
            ELSE tickwork_now() END
    FROM decided d
    -- Most results change nothing on the job (a success after a success):
    -- those rows are left alone rather than rewritten.
    WHERE j.id = d.id
      AND (d.state IS NOT NULL OR j.consecutive_failures <> d.failures)
    RETURNING j.id, j.name, j.alert_url, j.state_reason, d.state AS decided
), failed_alerts AS (
    INSERT INTO alerts (job_id, execution_id, kind, payload)
    SELECT d.job_id, d.id, 'EXECUTION_FAILED', jsonb_build_object(
        'type', 'EXECUTION_FAILED', 'job_id', d.job_id, 'job_name', j.name,
        'execution_id', d.id, 'scheduled_for', d.scheduled_for,
        'error', d.error, 'reason', NULL::text, 'covers', NULL::int,
        'occurred_at', tickwork_now())
    FROM done d JOIN jobs j ON j.id = d.job_id
    WHERE d.status = 'FAILED'
      AND coalesce(j.alert_url, %(alert_url)s::text) IS NOT NULL
), paused_alerts AS (
    -- Only the write that pauses the job (decided went from ACTIVE to PAUSED)
    -- alerts, naming the newest failure of this batch that led to it.
    INSERT INTO alerts (job_id, execution_id, kind, payload)
    SELECT u.id, last.id, 'JOB_PAUSED', jsonb_build_object(
        'type', 'JOB_PAUSED', 'job_id', u.id, 'job_name', u.name,
        'execution_id', last.id, 'scheduled_for', last.scheduled_for,
        'error', last.error, 'reason', u.state_reason, 'covers', NULL::int,
        'occurred_at', tickwork_now())
    FROM jobs_updated u LEFT JOIN LATERAL (
        SELECT x.id, x.scheduled_for, x.error FROM done x
        WHERE x.job_id = u.id AND x.status = 'FAILED'
        ORDER BY x.ended_at DESC
        LIMIT 1
    ) last ON true
    WHERE u.decided = 'PAUSED'
      AND coalesce(u.alert_url, %(alert_url)s::text) IS NOT NULL
), announced AS (
    SELECT tickwork_notify_executions(array_agg(id)) FROM done
)
SELECT done.id FROM done CROSS JOIN announced
"""

# One statement a heartbeat: renews every lease this daemon holds, refreshes its
# registry row, and marks daemons that stopped heartbeating as dead.
HEARTBEAT = """
WITH beat AS (
    UPDATE daemons SET heartbeat_at = tickwork_now(), state = 'RUNNING'
    WHERE id = %(daemon_id)s
), dead AS (
    UPDATE daemons SET state = 'DEAD'
    WHERE state = 'RUNNING'
      AND heartbeat_at < tickwork_now() - make_interval(secs => %(dead_after)s)
      AND id <> %(daemon_id)s
), forgotten AS (
    DELETE FROM daemons
    WHERE state <> 'RUNNING' AND heartbeat_at < tickwork_now() - interval '1 day'
)
UPDATE executions
SET lease_expires_at = tickwork_now() + make_interval(secs => %(lease)s)
WHERE daemon_id = %(daemon_id)s AND status = 'RUNNING'
RETURNING id, fence
"""

# Gives runs back on shutdown, so another daemon starts them at once rather
# than after a lease expiry. The interrupted attempt is kept as ABANDONED.
HAND_BACK = """
WITH input AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(fences)s::bigint[]) AS t(id, fence)
), returned AS (
    UPDATE executions e
    SET status = CASE WHEN e.failures > 0 THEN 'RETRYING' ELSE 'PENDING' END,
        run_at = tickwork_now(),
        fence = e.fence + 1,
        daemon_id = NULL,
        lease_expires_at = NULL
    FROM input i
    WHERE e.id = i.id AND e.fence = i.fence AND e.status = 'RUNNING'
    RETURNING e.id, e.attempt, e.started_at
), recorded AS (
    INSERT INTO attempts
        (execution_id, number, daemon_id, outcome, started_at, finished_at, error)
    SELECT id, attempt, %(daemon_id)s, 'ABANDONED', started_at, tickwork_now(),
        'handed back: its daemon shut down'
    FROM returned
    ON CONFLICT (execution_id, number) DO NOTHING
), announced AS (
    SELECT tickwork_notify_executions(array_agg(id)) FROM returned
)
SELECT returned.id FROM returned CROSS JOIN announced
"""

ANNOUNCE = "SELECT tickwork_notify_executions(%(ids)s::uuid[])"

# Seconds since the due time of the oldest execution waiting to start; reads the
# claimable index only.
OLDEST_OVERDUE = """
SELECT coalesce(extract(epoch FROM tickwork_now() - min(run_at)), 0)::float8
FROM executions
WHERE status IN ('PENDING', 'RETRYING') AND run_at <= tickwork_now()
"""

SECONDS_UNTIL_DUE = """
SELECT extract(epoch FROM least(
    (SELECT min(next_run_at) FROM jobs WHERE state = 'ACTIVE'),
    (SELECT min(run_at) FROM executions WHERE status IN ('PENDING', 'RETRYING')),
    (SELECT min(lease_expires_at) FROM executions WHERE status = 'RUNNING')
) - tickwork_now())::float8 AS seconds
"""

REGISTER = """
INSERT INTO daemons (id, hostname, pid, concurrency, state)
VALUES (%(daemon_id)s, %(hostname)s, %(pid)s, %(concurrency)s, 'RUNNING')
"""

UNREGISTER = """
UPDATE daemons SET state = 'STOPPED', stopped_at = tickwork_now()
WHERE id = %(daemon_id)s
"""


@dataclass(frozen=True)
class Claim:
    """A run this daemon holds, with what it needs to perform it."""

    execution_id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    attempt: int
    failures: int
    fence: int
    trigger: str
    scheduled_for: datetime | None
    started_at: datetime
    action: dict[str, Any]
    payload: Any
    max_retries: int
    timeout_seconds: float
    # The job's own retry backoff; None means the daemon's settings.
    retry_base_seconds: float | None = None
    retry_max_seconds: float | None = None
    # When the execution was due (fire time plus jitter, or retry time).
    run_at: datetime | None = None
    # The job's encrypted secrets (shared/secrets.py), opened only to send.
    secret_headers: bytes | None = field(default=None, repr=False)
    signing_secrets: bytes | None = field(default=None, repr=False)
    # The previous signing secret also signs until then.
    signing_previous_until: datetime | None = None
    # The encrypted key of the job's own client certificate.
    client_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, ready to be written under its claim's fence."""

    claim: Claim
    failed: bool
    status: str
    retry_delay: float
    duration: float
    http_status: int | None
    result: Any
    error: str | None
    excerpt: str | None


async def schedule_and_claim(
    conn: psycopg.AsyncConnection,
    *,
    daemon_id: uuid.UUID,
    schedule_limit: int,
    claim_limit: int,
    lease_seconds: float,
    alert_url: str | None = None,
) -> tuple[int, list[Claim]]:
    """In one short transaction: fire due jobs, then claim up to ``claim_limit``.

    ``alert_url`` is the daemon's TICKWORK_ALERT_URL: missed fire times of jobs
    without an alert URL of their own queue alerts only when it is set.
    Returns how many jobs were fired and the claims.
    """
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LOCK_DUE_JOBS, {"limit": schedule_limit})
        due = await cur.fetchall()
        changed: set[uuid.UUID] = set()
        if due:
            firings = {row["id"]: _plan(row) for row in due}
            replacing = [j for j, f in firings.items() if f.cancel_unfinished]
            if replacing:
                await cur.execute(REPLACE_UNFINISHED, {"job_ids": replacing})
                changed.update(row["id"] for row in await cur.fetchall())
            params = {**_fire_params(due, firings), "alert_url": alert_url}
            await cur.execute(FIRE_JOBS, params)
            changed.update(row["id"] for row in await cur.fetchall())

        claims: list[Claim] = []
        if claim_limit > 0:
            await cur.execute(
                CLAIM,
                {"limit": claim_limit, "daemon_id": daemon_id, "lease": lease_seconds},
            )
            claims = [_claim(row) for row in await cur.fetchall()]
            changed.update(claim.execution_id for claim in claims)

        if changed:
            await cur.execute(ANNOUNCE, {"ids": list(changed)})
    return len(due), claims


def _plan(row: dict[str, Any]) -> Firing:
    return plan_firing(
        Schedule.model_validate(row["schedule"]),
        Policies(
            catch_up=CatchUp(row["catch_up"]),
            catch_up_limit=row["catch_up_limit"],
            misfire_grace_seconds=row["misfire_grace_seconds"],
            overlap=Overlap(row["overlap"]),
            max_in_flight=row["max_in_flight"],
            jitter_seconds=row["jitter_seconds"],
        ),
        due=row["next_run_at"],
        now=row["now"],
        unfinished=row["unfinished"],
    )


def _fire_params(
    due: Sequence[dict[str, Any]], firings: dict[uuid.UUID, Firing]
) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {
        name: []
        for name in (
            "job_ids next_run_ats completes occurrence_jobs scheduled_fors "
            "run_ats statuses covers reasons"
        ).split()
    }
    for row in due:
        firing = firings[row["id"]]
        runs = any(o.status == "PENDING" for o in firing.occurrences)
        unfinished = row["unfinished"] and not firing.cancel_unfinished
        params["job_ids"].append(row["id"])
        params["next_run_ats"].append(firing.next_run_at)
        # With no fire time left and nothing to wait for, the job is done now;
        # otherwise it completes when its last run finishes.
        params["completes"].append(
            firing.next_run_at is None and not runs and not unfinished
        )
        for occurrence in firing.occurrences:
            params["occurrence_jobs"].append(row["id"])
            params["scheduled_fors"].append(occurrence.scheduled_for)
            params["run_ats"].append(occurrence.run_at)
            params["statuses"].append(occurrence.status)
            params["covers"].append(occurrence.covers)
            params["reasons"].append(occurrence.reason)
    return params


def _claim(row: dict[str, Any]) -> Claim:
    return Claim(
        execution_id=row["id"],
        job_id=row["job_id"],
        job_name=row["job_name"],
        attempt=row["attempt"],
        failures=row["failures"],
        fence=row["fence"],
        trigger=row["trigger"],
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        action=row["action"],
        payload=row["payload"],
        max_retries=row["max_retries"],
        timeout_seconds=row["timeout_seconds"],
        retry_base_seconds=row["retry_base_seconds"],
        retry_max_seconds=row["retry_max_seconds"],
        run_at=row["run_at"],
        secret_headers=row["secret_headers"],
        signing_secrets=row["signing_secrets"],
        signing_previous_until=row["signing_previous_until"],
        client_key=row["client_key"],
    )


async def finish(
    conn: psycopg.AsyncConnection,
    outcomes: Sequence[Outcome],
    *,
    alert_url: str | None = None,
) -> set[uuid.UUID]:
    """Write finished attempts in one statement; returns the ids it accepted.

    ``alert_url`` is the daemon's TICKWORK_ALERT_URL, as for schedule_and_claim.
    """
    params: dict[str, Any] = {
        "alert_url": alert_url,
        "ids": [o.claim.execution_id for o in outcomes],
        "fences": [o.claim.fence for o in outcomes],
        "statuses": [o.status for o in outcomes],
        "failed": [o.failed for o in outcomes],
        "retry_delays": [o.retry_delay for o in outcomes],
        "durations": [o.duration for o in outcomes],
        "http_statuses": [o.http_status for o in outcomes],
        "results": [None if o.result is None else Jsonb(o.result) for o in outcomes],
        "errors": [o.error for o in outcomes],
        "excerpts": [o.excerpt for o in outcomes],
    }
    async with conn.transaction():
        await conn.execute(LOCK_FINISHING_JOBS, {"ids": params["ids"]})
        cur = await conn.execute(FINISH, params)
        return {row[0] for row in await cur.fetchall()}


async def heartbeat(
    conn: psycopg.AsyncConnection,
    *,
    daemon_id: uuid.UUID,
    lease_seconds: float,
) -> dict[uuid.UUID, int]:
    """Renew every lease this daemon holds; returns {execution id: fence} held."""
    cur = await conn.execute(
        HEARTBEAT,
        {
            "daemon_id": daemon_id,
            "lease": lease_seconds,
            "dead_after": lease_seconds * 2,
        },
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


async def hand_back(
    conn: psycopg.AsyncConnection,
    claims: Sequence[Claim],
    *,
    daemon_id: uuid.UUID,
) -> int:
    """Return unfinished runs for another daemon to start now; returns the count."""
    cur = await conn.execute(
        HAND_BACK,
        {
            "ids": [c.execution_id for c in claims],
            "fences": [c.fence for c in claims],
            "daemon_id": daemon_id,
        },
    )
    return len(await cur.fetchall())


async def oldest_overdue_seconds(conn: psycopg.AsyncConnection) -> float:
    """How long the oldest run waiting to start has been due; 0 if none."""
    cur = await conn.execute(OLDEST_OVERDUE)
    row = await cur.fetchone()
    return 0.0 if row is None else row[0]


async def seconds_until_due(conn: psycopg.AsyncConnection) -> float | None:
    """Seconds until anything is next due, by the database clock; None if nothing."""
    cur = await conn.execute(SECONDS_UNTIL_DUE)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def register(
    conn: psycopg.AsyncConnection,
    *,
    daemon_id: uuid.UUID,
    hostname: str,
    pid: int,
    concurrency: int,
) -> None:
    await conn.execute(
        REGISTER,
        {
            "daemon_id": daemon_id,
            "hostname": hostname,
            "pid": pid,
            "concurrency": concurrency,
        },
    )


async def unregister(conn: psycopg.AsyncConnection, *, daemon_id: uuid.UUID) -> None:
    await conn.execute(UNREGISTER, {"daemon_id": daemon_id})
