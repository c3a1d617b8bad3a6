"""Scale: does a big history slow down claiming and the API's pages?

Two databases, filled with ``generate_series``: a large one (100,000 jobs, 50
finished executions each: 5,000,000 rows) and a small one (1,000 jobs, the
same 50 each). Indexes are dropped for the load and built again afterwards,
then the tables are vacuumed and analysed, as autovacuum would have. On each:

* claim: the daemon's own statement (``daemon.queue.schedule_and_claim``),
  called from here on 100 jobs made due, which it fires and claims;
* ``jobs(first: 50)`` and ``job(id) { executions(first: 50) }`` through a real
  API process.

The figure is the p95 of each, and the ratio large / small of the worst one.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from daemon import queue
from tests.bench.harness import (
    TOKEN,
    Figure,
    Session,
    interval_schedule,
    percentile,
    tickwork,
    webhook_action,
)

JOBS_PAGE = "{ jobs(first: 50) { edges { node { id name nextRunAt state } } } }"
EXECUTIONS_PAGE = """
query ($id: ID!) {
  job(id: $id) {
    executions(first: 50) {
      edges { node { id status scheduledFor finishedAt httpStatus } }
    }
  }
}
"""
QUERIES = ("claim", "jobs_page", "executions_page")


def run(session: Session) -> dict[str, Any]:
    large, per_job = (10_000, 10) if session.quick else (100_000, 50)
    samples = 20 if session.quick else 50
    figures: dict[str, Any] = {"executions_per_job": per_job, "samples": samples}
    for jobs in (1000, large):
        name = f"bench_scale_{jobs}"
        url = session.server.create_database(name)
        loaded = _fill(session, name, jobs, per_job)
        p95 = {query: Figure() for query in QUERIES}
        with tickwork(url, session.log_dir(name)) as processes:
            processes.start_api()
            for _ in range(session.reps):
                claim = asyncio.run(_claim_latencies(url, samples))
                p95["claim"].add(percentile(claim, 95))
                pages = _page_latencies(processes.base_url, url, samples)
                for query, values in pages.items():
                    p95[query].add(percentile(values, 95))
        session.server.drop_database(name)
        figures[str(jobs)] = {
            "executions": jobs * per_job,
            "load_s": loaded,
            **{f"{query}_p95_ms": f.as_json() for query, f in p95.items()},
        }
    small, big = figures["1000"], figures[str(large)]
    figures["ratios"] = {
        query: big[f"{query}_p95_ms"]["median"] / small[f"{query}_p95_ms"]["median"]
        for query in QUERIES
    }
    figures["large_jobs"] = large
    return figures


def _fill(session: Session, name: str, jobs: int, per_job: int) -> float:
    started = time.monotonic()
    anchor = datetime.now(UTC) - timedelta(days=60)
    schedule = Jsonb(interval_schedule(3600, anchor))
    action = Jsonb(webhook_action("http://127.0.0.1:9/hook"))
    with session.server.connect(name) as conn:
        indexes = _drop_indexes(conn)
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(
                """
                INSERT INTO jobs (id, name, schedule, action, max_retries,
                    timeout_seconds, state, next_run_at, created_at, updated_at)
                SELECT gen_random_uuid(), 'scale ' || n, %s, %s, 0, 30, 'ACTIVE',
                    now() + interval '10 minutes' + n * interval '1 millisecond',
                    now() - n * interval '1 second', now()
                FROM generate_series(1, %s) AS n
                """,
                (schedule, action, jobs),
            )
            conn.execute(
                """
                INSERT INTO executions (id, job_id, scheduled_for, run_at, trigger,
                    status, attempt, failures, fence, started_at, finished_at,
                    http_status, covers, created_at)
                SELECT gen_random_uuid(), j.id, t, t, 'SCHEDULE', 'SUCCEEDED',
                    1, 0, 1, t, t + interval '20 milliseconds', 204, 1, t
                FROM jobs j, generate_series(1, %s) AS k,
                    LATERAL (SELECT now() - k * interval '1 hour' AS t) AS f
                """,
                (per_job,),
            )
        conn.execute("SET maintenance_work_mem = '256MB'")
        for statement in indexes:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE executions")
    return time.monotonic() - started


def _drop_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the secondary indexes of ``executions``; returns how to rebuild them."""
    rebuild = []
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'executions'::regclass AND contype = 'u'"
    ).fetchall()
    for name, definition in constraints:
        conn.execute(f'ALTER TABLE executions DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE executions ADD CONSTRAINT "{name}" {definition}')
    indexes = conn.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = 'executions'::regclass AND NOT x.indisprimary "
        "AND NOT x.indisunique"
    ).fetchall()
    for name, definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
        rebuild.append(definition)
    return rebuild


async def _claim_latencies(url: str, samples: int) -> list[float]:
    """Make 100 jobs due, then time the daemon's fire-and-claim transaction."""
    latencies = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(samples):
            await conn.execute(
                "UPDATE jobs SET next_run_at = tickwork_now() WHERE id IN "
                "(SELECT id FROM jobs WHERE state = 'ACTIVE' "
                "ORDER BY next_run_at LIMIT 100)"
            )
            started = time.perf_counter()
            _, claims = await queue.schedule_and_claim(
                conn,
                daemon_id=uuid.uuid4(),
                schedule_limit=100,
                claim_limit=100,
                lease_seconds=30,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            # Finish them as a daemon would, untimed, so the next round is alike.
            await conn.execute(
                "UPDATE executions SET status = 'SUCCEEDED', lease_expires_at = NULL,"
                " finished_at = tickwork_now() WHERE id = ANY(%s)",
                ([claim.execution_id for claim in claims],),
            )
    return latencies


def _page_latencies(api: str, url: str, samples: int) -> dict[str, list[float]]:
    with psycopg.connect(url) as conn:
        job_ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM jobs ORDER BY random() LIMIT %s", (samples,)
            )
        ]
    timings: dict[str, list[float]] = {"jobs_page": [], "executions_page": []}
    with httpx.Client(
        base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        for query, variables in (("jobs_page", None), ("executions_page", 1)):
            for i in range(samples + 3):
                body = {"query": JOBS_PAGE if variables is None else EXECUTIONS_PAGE}
                if variables is not None:
                    body["variables"] = {"id": random.choice(job_ids)}
                started = time.perf_counter()
                response = client.post("/graphql", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or "errors" in response.json():
                    raise RuntimeError(f"{query} failed: {response.text[:300]}")
                if i >= 3:  # the first few warm the API's caches and pool
                    timings[query].append(elapsed)
    return timings
