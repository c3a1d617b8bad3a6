"""Real daemons killed and stopped under load: no run lost, none held twice.

Jobs are inserted straight into the database (one-off runs due now) so that
hundreds are due at once; the daemons are real `tickwork daemon` processes and
the target is a real local server that counts deliveries per idempotency key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from shared.actions import Action
from shared.schedule import Schedule
from tests.support.jobs import db_now, insert_job
from tests.support.processes import Tickwork, poll
from tests.support.target import Target

pytestmark = pytest.mark.e2e

UNFINISHED = "SELECT count(*) FROM executions WHERE status <> 'SUCCEEDED'"


def insert_due_jobs(database_url: str, urls: list[str]) -> None:
    async def insert() -> None:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True
        ) as db:
            # One transaction: every run becomes due at the same moment.
            async with db.transaction():
                now = await db_now(db)
                for url in urls:
                    await insert_job(
                        db,
                        schedule=Schedule(kind="at", at=now),
                        action=Action(kind="webhook", url=url),
                        timeout_seconds=30,
                    )
                await db.execute("NOTIFY tickwork_wakeup")

    asyncio.run(insert())


def query(database_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def daemon_id(database_url: str, pid: int) -> object:
    [(found,)] = poll(
        lambda: query(database_url, "SELECT id FROM daemons WHERE pid = %s", pid),
        timeout=10,
    )
    return found


def test_killing_a_daemon_mid_flight_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """Three daemons, 300 runs due; one is killed with SIGKILL mid-flight. Every
    run succeeds; only runs the killed daemon held are delivered twice, and the
    others take them over within the lease."""
    lease = 3.0
    system = Tickwork(
        database_url, tmp_path, lease_seconds=str(lease), concurrency="40"
    )
    with Target() as target:
        daemons = [system.start("daemon") for _ in range(3)]
        victim = daemons[0]
        victim_id = daemon_id(database_url, victim.pid)
        insert_due_jobs(database_url, [target.url("/slow/0.5")] * 300)

        # Kill the victim once it holds runs and deliveries are under way.
        poll(
            lambda: query(
                database_url,
                "SELECT count(*) FROM executions "
                "WHERE daemon_id = %s AND status = 'RUNNING'",
                victim_id,
            )[0][0],
            timeout=20,
        )
        target.wait_for(20, timeout=20)
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = query(database_url, "SELECT tickwork_now()")[0][0]

        poll(lambda: query(database_url, UNFINISHED)[0][0] == 0, timeout=40)
        codes = system.stop()

    assert codes[1:] == [0, 0], f"surviving daemons exited {codes}; see {tmp_path}"
    statuses = query(database_url, "SELECT status, count(*) FROM executions GROUP BY 1")
    assert statuses == [("SUCCEEDED", 300)]

    deliveries = Counter(r.headers["idempotency-key"] for r in target.requests)
    executions = {
        str(row[0]) for row in query(database_url, "SELECT id FROM executions")
    }
    assert set(deliveries) == executions  # each at least once
    taken_over = {
        str(row[0])
        for row in query(
            database_url,
            "SELECT execution_id FROM attempts "
            "WHERE outcome = 'ABANDONED' AND daemon_id = %s",
            victim_id,
        )
    }
    duplicated = {key for key, count in deliveries.items() if count > 1}
    assert duplicated <= taken_over
    assert max(deliveries.values()) <= 2

    # The victim held runs when it died, and each was claimed again within the
    # lease (plus the time a claim round takes) of the kill.
    assert taken_over
    last_takeover = query(
        database_url,
        "SELECT max(finished_at) FROM attempts WHERE outcome = 'ABANDONED'",
    )[0][0]
    assert last_takeover - killed_at <= timedelta(seconds=lease + 2)


def test_sigterm_finishes_short_runs_and_hands_the_rest_back_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """SIGTERM with runs in flight: those that fit in the grace period finish, the
    rest are handed back and another daemon starts them long before the lease
    would have expired; the stopped daemon exits 0."""
    system = Tickwork(
        database_url,
        tmp_path,
        lease_seconds="60",
        shutdown_grace_seconds="2",
        concurrency="40",
        per_host_concurrency="40",  # every run goes to the one test target
    )
    with Target() as target:
        stopping = system.start("daemon")
        insert_due_jobs(
            database_url, [target.url("/slow/0.5")] * 20 + [target.url("/slow/8")] * 20
        )
        target.wait_for(40, timeout=20)
        stopping_id = daemon_id(database_url, stopping.pid)

        started = time.monotonic()
        stopping.send_signal(signal.SIGTERM)
        assert stopping.wait(timeout=15) == 0
        stopped_after = time.monotonic() - started
        system.start("daemon")
        poll(lambda: query(database_url, UNFINISHED)[0][0] == 0, timeout=30)
        system.stop()

    assert stopped_after < 2 + 3  # the grace period, plus time to write it all
    handed_back = query(
        database_url,
        "SELECT count(*) FROM attempts WHERE outcome = 'ABANDONED' "
        "AND daemon_id = %s AND error LIKE 'handed back%%'",
        stopping_id,
    )[0][0]
    finished_first = query(
        database_url,
        "SELECT count(*) FROM attempts WHERE outcome = 'SUCCEEDED' AND daemon_id = %s",
        stopping_id,
    )[0][0]
    assert finished_first == 20  # the short runs finished within the grace period
    assert handed_back == 20  # the long ones went back, and ran again elsewhere
    state = query(database_url, "SELECT state FROM daemons WHERE id = %s", stopping_id)
    assert state == [("STOPPED",)]
