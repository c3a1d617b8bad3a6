"""Punctuality on an idle system: how long from "should run" to "left".

One API and one daemon, idle. Part one: ``triggerJob`` 200 times, 20 ms apart;
the lag is from the execution's creation (``created_at``, stamped inside the
``triggerJob`` transaction just before its commit) to the sink's receipt. Part
two: 200 interval jobs whose first fire times lie 20 ms apart a few seconds
ahead; the lag is from each execution's stored run time to the receipt.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx

from tests.bench.harness import (
    TOKEN,
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

CREATE = """
mutation ($input: CreateJobInput!) {
  createJob(input: $input) { __typename ... on Job { id } }
}
"""
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"
SPACING = 0.020


def run(session: Session) -> dict[str, Any]:
    count = 50 if session.quick else 200
    triggered = {q: Figure() for q in ("p50", "p95", "p99", "max")}
    scheduled = {q: Figure() for q in ("p50", "p95", "p99", "max")}
    for rep in range(session.reps):
        result = _once(session, count, rep)
        for quantile in triggered:
            triggered[quantile].add(result["triggered"][quantile])
            scheduled[quantile].add(result["scheduled"][quantile])
    return {
        "runs": count,
        "spacing_ms": SPACING * 1000,
        "trigger_to_leave_ms": {q: f.as_json() for q, f in triggered.items()},
        "due_to_leave_ms": {q: f.as_json() for q, f in scheduled.items()},
    }


def _once(session: Session, count: int, rep: int) -> dict[str, Any]:
    name = f"bench_punctuality_{rep}"
    url = session.server.create_database(name)
    with (
        sink() as receiver,
        tickwork(url, session.log_dir(name)) as processes,
        session.server.connect(name) as conn,
    ):
        processes.start_api()
        processes.start("daemon")
        job = processes.graphql(
            CREATE,
            input={
                "name": "punctuality",
                "schedule": {"intervalSeconds": 86400},
                "action": {"webhook": {"url": receiver.url()}},
                "maxRetries": 0,
            },
        )["createJob"]["id"]
        # The job's own first run, then a warm-up through the same path.
        wait_for(lambda: receiver.count() >= 1, 30, "the first run")
        with httpx.Client(
            base_url=processes.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ) as client:
            _trigger_paced(client, job, 20)
            wait_for(lambda: receiver.count() >= 21, 30, "the warm-up runs")
            time.sleep(3)
            before = receiver.count()
            _trigger_paced(client, job, count)
        wait_for(lambda: receiver.count() >= before + count, 60, "triggered runs")
        triggered = _lags(conn, receiver.records()[before:], "created_at")

        # Interval jobs coming due one after another, a few seconds ahead.
        time.sleep(1)
        before = receiver.count()
        now = db_now(conn)
        firsts = [now + timedelta(seconds=2 + i * SPACING) for i in range(count)]
        action = webhook_action(receiver.url())
        with conn.transaction():
            insert_jobs(
                conn,
                [interval_schedule(3600, first) for first in firsts],
                [action] * count,
                firsts,
            )
            conn.execute("NOTIFY tickwork_wakeup")
        wait_for(lambda: receiver.count() >= before + count, 60, "interval runs")
        scheduled = _lags(conn, receiver.records()[before:], "run_at")
    session.server.drop_database(name)
    return {"triggered": triggered, "scheduled": scheduled}


def _trigger_paced(client: httpx.Client, job_id: str, count: int) -> None:
    start = time.monotonic()
    for i in range(count):
        pause = start + i * SPACING - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        response = client.post(
            "/graphql", json={"query": TRIGGER, "variables": {"id": job_id}}
        )
        response.raise_for_status()
        if response.json()["data"]["triggerJob"]["__typename"] != "Execution":
            raise RuntimeError(f"triggerJob failed: {response.text}")


def _lags(conn, records: list[tuple[str, float]], column: str) -> dict[str, float]:
    received = {uuid.UUID(key): t for key, t in records if key}
    rows = conn.execute(
        f"SELECT id, extract(epoch FROM {column}) FROM executions WHERE id = ANY(%s)",
        (list(received),),
    ).fetchall()
    return lag_summary([(received[i] - float(t)) * 1000 for i, t in rows])
