"""The claim query stays an index lookup when the history is large.

Daemons run CLAIM many times a second. It must find the few due runs through
the partial index ``ix_executions_claimable``, whatever the size of the
finished history; a sequential scan of executions would grow with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import AddConstraint, CreateIndex

from daemon.queue import CLAIM
from shared import models

HISTORY = 1_000_000
DUE = 300
JOBS = 100

# Ids ascend and each job's rows are adjacent, so the primary key and unique
# index, which stay in place during the load, grow at their right edge.
# One run in every HISTORY / DUE is a due PENDING one; the rest SUCCEEDED.
INSERT_HISTORY = """
INSERT INTO executions (id, job_id, scheduled_for, trigger, status, run_at,
    attempt, failures, fence, finished_at)
SELECT lpad(to_hex(i), 32, '0')::uuid, j.ids[1 + ((i - 1) * %(jobs)s) / %(rows)s],
    t0 - make_interval(secs => i), 'SCHEDULE',
    CASE WHEN i %% %(every)s = 0 THEN 'PENDING' ELSE 'SUCCEEDED' END,
    t0 - make_interval(secs => i), 1, 0, 1,
    CASE WHEN i %% %(every)s = 0 THEN NULL ELSE t0 - make_interval(secs => i) END
FROM generate_series(1, %(rows)s) AS i,
    (SELECT array_agg(id) AS ids FROM jobs) j,
    (SELECT tickwork_now() AS t0) n
"""

INSERT_JOBS = """
INSERT INTO jobs (id, name, schedule, action, max_retries, timeout_seconds, state,
    next_run_at)
SELECT gen_random_uuid(), 'job ' || i,
    '{"kind": "interval", "interval_seconds": 60}', '{"kind": "fetch"}', 3, 30,
    'ACTIVE', tickwork_now() + interval '1 hour'
FROM generate_series(1, %(jobs)s) AS i
"""

# Every index and constraint on executions, as the database prints them.
DEFINITIONS = """
SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'executions'
UNION ALL
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'executions'::regclass
ORDER BY 1, 2
"""


def _load_history(conn: psycopg.Connection) -> None:
    """Insert HISTORY executions the way a bulk load does: the secondary indexes
    and the foreign key to jobs are dropped, then built again in one pass each,
    which is about twice as fast as maintaining them row by row.

    They are rebuilt from the models, as the migrations built them: a definition
    read back from pg_indexes prints the partial predicates differently, and the
    planner matches predicates by their form. The test checks that every index
    and constraint reads back as before.
    """
    before = conn.execute(DEFINITIONS).fetchall()
    table = models.Execution.__table__
    rebuilt = [
        *(CreateIndex(index) for index in table.indexes),
        *(AddConstraint(key) for key in table.foreign_key_constraints),
    ]
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")  # throwaway rows
        for index in table.indexes:
            conn.execute(f'DROP INDEX "{index.name}"')
        for key in table.foreign_key_constraints:
            conn.execute(f'ALTER TABLE executions DROP CONSTRAINT "{key.name}"')
        conn.execute(INSERT_JOBS, {"jobs": JOBS})
        conn.execute(
            INSERT_HISTORY, {"jobs": JOBS, "rows": HISTORY, "every": HISTORY // DUE}
        )
        for statement in rebuilt:
            conn.execute(str(statement.compile(dialect=postgresql.dialect())))
    conn.execute("ANALYZE executions")
    conn.execute("ANALYZE jobs")
    assert conn.execute(DEFINITIONS).fetchall() == before


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_claiming_reads_the_claimable_index_not_the_whole_history(
    database_url: str,
) -> None:
    """With a million executions, a few hundred of them due, EXPLAIN of CLAIM
    shows ix_executions_claimable and no sequential scan of executions."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        _load_history(conn)
        [[due]] = conn.execute(
            "SELECT count(*) FROM executions"
            " WHERE status = 'PENDING' AND run_at <= tickwork_now()"
        ).fetchall()

        # Bound by hand, as literals: what the planner sees for a real claim.
        params = {"limit": 100, "daemon_id": uuid.uuid4(), "lease": 30.0}
        claim = psycopg.ClientCursor(conn).mogrify(CLAIM, params)
        [[plan]] = conn.execute(f"EXPLAIN (FORMAT JSON) {claim}").fetchall()

    nodes = list(_plan_nodes(plan[0]["Plan"]))
    scans = {
        (n["Node Type"], n.get("Index Name"))
        for n in nodes
        if n.get("Relation Name") == "executions" or "Index Name" in n
    }
    claimable = {kind for kind, index in scans if index == "ix_executions_claimable"}
    assert due == DUE
    assert ("Seq Scan", None) not in scans, scans
    assert claimable & {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}, scans
