"""Slow targets: 1,000 runs held by hosts that answer after 5 s.

One daemon, allowed enough runs in flight (concurrency 1,100, 64 per host).
Twenty slow hosts (127.0.0.2 to 127.0.0.21: on Linux the whole 127/8 answers
without setup) are served by one sink process that answers after 5 s. A fast
host (127.0.0.1) receives 50 interval jobs a second throughout. Once the fast
jobs run, 1,000 runs aimed at the slow hosts come due at once. Measured: the
daemon's resident memory (``/proc/<pid>/status``, peak over the samples), the
most runs in flight at once, and the fast host's lag (run time to receipt)
while the slow runs are in flight, with the fire times of the fast jobs that
never reached it (and their status).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from tests.bench.harness import (
    Figure,
    Session,
    db_now,
    insert_jobs,
    interval_schedule,
    lag_summary,
    rss_mb,
    sink,
    tickwork,
    wait_for,
    webhook_action,
)

SETTINGS = {"concurrency": "1100", "per_host_concurrency": "64"}
SLOW_HOSTS = [f"127.0.0.{n}" for n in range(2, 22)]
DELAY = 5.0
FAST_JOBS = 50


def run(session: Session) -> dict[str, Any]:
    slow_runs = 200 if session.quick else 1000
    rss, baseline, in_flight = Figure(), Figure(), Figure()
    p50, p99, undelivered = Figure(), Figure(), Figure()
    why: list[dict[str, int]] = []
    for rep in range(session.reps):
        result = _once(session, slow_runs, rep)
        rss.add(result["rss_mb"])
        baseline.add(result["rss_before_mb"])
        in_flight.add(result["max_in_flight"])
        p50.add(result["fast_lag_ms"]["p50"])
        p99.add(result["fast_lag_ms"]["p99"])
        undelivered.add(result["fast_undelivered"])
        why.append(result["fast_undelivered_why"])
    return {
        "slow_runs": slow_runs,
        "settings": SETTINGS,
        "rss_mb": rss.as_json(),
        "rss_before_mb": baseline.as_json(),
        "max_in_flight": in_flight.as_json(),
        "fast_lag_p50_ms": p50.as_json(),
        "fast_lag_p99_ms": p99.as_json(),
        "fast_undelivered": undelivered.as_json(),
        "fast_undelivered_why": why,
    }


def _once(session: Session, slow_runs: int, rep: int) -> dict[str, Any]:
    name = f"bench_slow_targets_{rep}"
    url = session.server.create_database(name)
    with (
        sink() as fast,
        sink(SLOW_HOSTS, delay=DELAY) as slow,
        tickwork(url, session.log_dir(name), **SETTINGS) as processes,
        session.server.connect(name) as conn,
    ):
        daemon = processes.start("daemon")
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM daemons").fetchone()[0],
            30,
            "the daemon to register",
        )
        base = db_now(conn).replace(microsecond=0) + timedelta(seconds=1)
        anchors = [base + timedelta(seconds=i / FAST_JOBS) for i in range(FAST_JOBS)]
        with conn.transaction():
            insert_jobs(
                conn,
                [interval_schedule(1, anchor) for anchor in anchors],
                [webhook_action(fast.url())] * FAST_JOBS,
                anchors,
                name="fast",
            )
            conn.execute("NOTIFY tickwork_wakeup")
        time.sleep(4)
        rss_before = rss_mb(daemon.pid)

        samples: list[tuple[float, int]] = []
        sampling = threading.Event()

        def sample() -> None:
            with session.server.connect(name) as watcher:
                while not sampling.is_set():
                    (running,) = watcher.execute(
                        "SELECT count(*) FROM executions WHERE status = 'RUNNING'"
                    ).fetchone()
                    samples.append((rss_mb(daemon.pid), running))
                    time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = db_now(conn)
        slow_actions = [
            webhook_action(slow.url(SLOW_HOSTS[i % len(SLOW_HOSTS)]))
            for i in range(slow_runs)
        ]
        with conn.transaction():
            insert_jobs(
                conn,
                [interval_schedule(3600, start)] * slow_runs,
                slow_actions,
                [start] * slow_runs,
                name="slow",
            )
            conn.execute("NOTIFY tickwork_wakeup")
        wait_for(lambda: slow.count() >= slow_runs, 60, "the slow runs to start")
        time.sleep(DELAY + 1)
        sampling.set()
        sampler.join()
        end = start + timedelta(seconds=DELAY + 1)
        rows = conn.execute(
            "SELECT e.id, extract(epoch FROM e.run_at), e.status, e.reason "
            "FROM executions e JOIN jobs j ON j.id = e.job_id "
            "WHERE j.name LIKE 'fast %%' AND e.scheduled_for >= %s "
            "AND e.scheduled_for < %s",
            (start, end),
        ).fetchall()
        received = {uuid.UUID(key): t for key, t in fast.records() if key}
    session.server.drop_database(name)
    lags = [(received[i] - float(t)) * 1000 for i, t, _, _ in rows if i in received]
    # Fire times of the fast jobs that never reached the fast host, and why.
    undelivered = Counter(
        f"{status}: {reason}" if reason else status
        for i, _, status, reason in rows
        if i not in received
    )
    expected = FAST_JOBS * round((end - start).total_seconds())
    return {
        "rss_before_mb": rss_before,
        "rss_mb": max(r for r, _ in samples),
        "max_in_flight": max(n for _, n in samples),
        "fast_lag_ms": lag_summary(lags),
        "fast_undelivered": expected - len(lags),
        "fast_undelivered_why": dict(undelivered),
    }
