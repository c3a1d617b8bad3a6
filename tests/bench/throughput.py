"""Throughput: many runs due at once, each a webhook POST to a fast local sink.

The jobs are hourly interval jobs all due now, written in one transaction with
a wake-up notification, while the daemons already wait. The rate counts from
that commit until the database shows every execution ``SUCCEEDED``, as the
peers' benchmarks count from their worker's start until every job is stored
as done. Statements (pg_stat_statements) and transactions (pg_stat_database)
are counted over the same stretch, daemons' heartbeats included.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from tests.bench.harness import (
    Counters,
    Figure,
    Session,
    cpu_seconds,
    db_now,
    insert_jobs,
    interval_schedule,
    sink,
    tickwork,
    wait_for,
    webhook_action,
)

# One sink is one host: the per-host limit must not be what is measured.
SETTINGS = {"concurrency": "64", "per_host_concurrency": "64"}


def run(session: Session) -> dict[str, Any]:
    runs = 2000 if session.quick else 20_000
    figures: dict[str, Any] = {"runs": runs, "settings": SETTINGS}
    for daemons in (1, 2):
        rate, statements, transactions = Figure(), Figure(), Figure()
        daemon_cpu, postgres_cpu = Figure(), Figure()
        for rep in range(session.reps):
            result = _once(session, daemons, runs, rep)
            rate.add(result["per_s"])
            daemon_cpu.add(result["daemon_cpu_s"] * 1000 / runs)
            postgres_cpu.add(result["postgres_cpu_s"] * 1000 / runs)
            transactions.add(result["transactions"] / runs)
            if "statements" in result:
                statements.add(result["statements"] / runs)
        figures[f"{daemons}_daemons"] = {
            "per_s": rate.as_json(),
            "statements_per_execution": statements.as_json(),
            "transactions_per_execution": transactions.as_json(),
            # CPU time depends less on what else the machine runs than rates do.
            "daemon_cpu_ms_per_execution": daemon_cpu.as_json(),
            "postgres_cpu_ms_per_execution": postgres_cpu.as_json(),
        }
    figures["counted_with"] = (
        "pg_stat_statements" if session.server.stat_statements else "pg_stat_database"
    )
    return figures


def _once(session: Session, daemons: int, runs: int, rep: int) -> dict[str, Any]:
    name = f"bench_throughput_{daemons}_{rep}"
    url = session.server.create_database(name)
    log_dir = session.log_dir(name)
    with (
        sink() as receiver,
        tickwork(url, log_dir, **SETTINGS) as processes,
        session.server.connect(name) as conn,
    ):
        for _ in range(daemons):
            processes.start("daemon")
        wait_for(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM daemons WHERE state = 'RUNNING'"
                ).fetchone()[0]
                == daemons
            ),
            30,
            f"the daemons to register; see {log_dir}",
        )
        time.sleep(1)  # their LISTEN connections open right after registering
        counters = Counters(session.server, name)
        counters.reset()
        cpu_before = _cpu(processes.daemons), session.server.cpu_seconds()

        now = db_now(conn)
        action = webhook_action(receiver.url())
        with conn.transaction():
            insert_jobs(
                conn,
                [interval_schedule(3600, now)] * runs,
                [action] * runs,
                [now] * runs,
            )
            conn.execute("NOTIFY tickwork_wakeup")
        started = time.time()

        def all_done() -> bool:
            done, failed = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'SUCCEEDED'),"
                " count(*) FILTER (WHERE status IN ('FAILED', 'RETRYING'))"
                " FROM executions"
            ).fetchone()
            if failed or any(d.poll() is not None for d in processes.daemons):
                raise RuntimeError(f"runs failed or a daemon stopped; see {log_dir}")
            return done >= runs

        wait_for(all_done, 600, f"{runs} runs; see {log_dir}", interval=0.02)
        ended = time.time()
        daemon_cpu = _cpu(processes.daemons) - cpu_before[0]
        postgres_cpu = session.server.cpu_seconds() - cpu_before[1]
        counts = counters.delta()
        received = receiver.count()
    session.server.drop_database(name)
    return {
        "per_s": runs / (ended - started),
        "received": received,
        "daemon_cpu_s": daemon_cpu,
        "postgres_cpu_s": postgres_cpu,
        **counts,
    }


def _cpu(processes: list[subprocess.Popen[bytes]]) -> float:
    return sum(cpu_seconds(process.pid) for process in processes)
