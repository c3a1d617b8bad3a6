"""Capacity: N interval jobs every second, on one daemon (or
``--capacity-daemons``).

The jobs' anchors are spread evenly over one second, so the demand is N fires
per second, evenly. After a warm-up, every fire time in the measured window
should reach the sink within a second: the ones that did not (late, or never
sent, or recorded MISSED or SKIPPED) are counted as late. The lag is from each
execution's stored run time to the sink's receipt.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from tests.bench.harness import (
    Figure,
    Session,
    db_now,
    insert_jobs,
    interval_schedule,
    lag_summary,
    sink,
    tickwork,
    wait_for,
    webhook_action,
)
from tests.bench.throughput import SETTINGS

WARM_UP = 5.0


def run(session: Session) -> dict[str, Any]:
    levels = (100, 200) if session.quick else (500, 1000, 2000)
    window = 5.0 if session.quick else session.capacity_window
    figures: dict[str, Any] = {
        "window_s": window,
        "settings": SETTINGS,
        "daemons": session.capacity_daemons,
    }
    for jobs in levels:
        rate, late, p99 = Figure(), Figure(), Figure()
        for rep in range(session.reps):
            result = _once(session, jobs, window, rep)
            rate.add(result["fires_per_s"])
            late.add(result["late"])
            p99.add(result["lag_ms"]["p99"])
        figures[str(jobs)] = {
            "fires_per_s": rate.as_json(),
            "late": late.as_json(),
            "lag_p99_ms": p99.as_json(),
        }
    return figures


def _once(session: Session, jobs: int, window: float, rep: int) -> dict[str, Any]:
    name = f"bench_capacity_{jobs}_{rep}"
    url = session.server.create_database(name)
    with (
        sink() as receiver,
        tickwork(url, session.log_dir(name), **SETTINGS) as processes,
        session.server.connect(name) as conn,
    ):
        daemons = session.capacity_daemons
        for _ in range(daemons):
            processes.start("daemon")
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM daemons").fetchone()[0] == daemons
            ),
            30,
            "the daemons to register",
        )
        base = db_now(conn).replace(microsecond=0) + timedelta(seconds=2)
        anchors = [base + timedelta(seconds=i / jobs) for i in range(jobs)]
        action = webhook_action(receiver.url())
        with conn.transaction():
            insert_jobs(
                conn,
                [interval_schedule(1, anchor) for anchor in anchors],
                [action] * jobs,
                anchors,
            )
            conn.execute("NOTIFY tickwork_wakeup")
        start = base + timedelta(seconds=WARM_UP)
        end = start + timedelta(seconds=window)
        time.sleep(max((end - db_now(conn)).total_seconds(), 0) + 2)
        rows = conn.execute(
            "SELECT id, extract(epoch FROM run_at) FROM executions "
            "WHERE scheduled_for >= %s AND scheduled_for < %s",
            (start, end),
        ).fetchall()
        received = {uuid.UUID(key): t for key, t in receiver.records() if key}
    session.server.drop_database(name)
    lags = [(received[i] - float(t)) * 1000 for i, t in rows if i in received]
    on_time = sum(1 for lag in lags if lag <= 1000)
    expected = round(jobs * window)
    return {
        "fires_per_s": len(lags) / window,
        "late": expected - on_time,
        "lag_ms": lag_summary(lags),
    }
