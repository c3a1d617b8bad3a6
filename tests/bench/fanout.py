"""Fan-out: 1,000 open ``executionUpdates`` subscriptions on one API process.

Two client processes (``tests/bench/subscribers.py``) hold 500 WebSockets
each. With no daemon running, each ``triggerJob`` makes exactly one state
change: a new PENDING execution. The figure is the time from its creation
(``created_at``, inside the ``triggerJob`` transaction) to the moment the last
of the 1,000 subscribers received it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from tests.bench.harness import (
    TOKEN,
    Figure,
    Session,
    percentile,
    tickwork,
    wait_until,
)

CREATE = """
mutation ($input: CreateJobInput!) {
  createJob(input: $input) { __typename ... on Job { id } }
}
"""
TRIGGER = """
mutation ($id: ID!) {
  triggerJob(id: $id) { __typename ... on Execution { id status } }
}
"""
CLIENTS = 2


def run(session: Session) -> dict[str, Any]:
    subscribers = 200 if session.quick else 1000
    changes = 5 if session.quick else 10
    p50, worst = Figure(), Figure()
    for rep in range(session.reps):
        delays = _once(session, subscribers, changes, rep)
        p50.add(percentile(delays, 50))
        worst.add(max(delays))
    return {
        "subscribers": subscribers,
        "changes_per_run": changes,
        "last_subscriber_p50_ms": p50.as_json(),
        "last_subscriber_max_ms": worst.as_json(),
    }


def _once(session: Session, subscribers: int, changes: int, rep: int) -> list[float]:
    name = f"bench_fanout_{rep}"
    url = session.server.create_database(name)
    clients: list[subprocess.Popen[str]] = []
    with (
        tickwork(url, session.log_dir(name)) as processes,
        session.server.connect(name) as conn,
    ):
        processes.start_api()
        job = processes.graphql(
            CREATE,
            input={
                "name": "fan-out",
                "schedule": {"intervalSeconds": 86400},
                "action": {"webhook": {"url": "http://127.0.0.1:9/hook"}},
            },
        )["createJob"]["id"]
        ws_url = processes.base_url.replace("http", "ws") + "/graphql"
        try:
            for _ in range(CLIENTS):
                clients.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "tests.bench.subscribers",
                            "--url",
                            ws_url,
                            "--count",
                            str(subscribers // CLIENTS),
                            "--token",
                            TOKEN,
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for client in clients:
                if client.stdout.readline().strip() != "ready":
                    raise RuntimeError("a subscriber process did not get ready")

            def trigger() -> str:
                result = processes.graphql(TRIGGER, id=job)["triggerJob"]
                return f"{result['id']} {result['status']}"

            # A first change proves every subscription is live.
            _wait_for_all(clients, [trigger()], subscribers, timeout=30)
            keys = []
            for _ in range(changes):
                keys.append(trigger())
                time.sleep(0.5)
            last = _wait_for_all(clients, keys, subscribers, timeout=30)
        finally:
            for client in clients:
                client.kill()
                client.wait()
        created = dict(
            conn.execute(
                "SELECT id::text, extract(epoch FROM created_at)::float8 "
                "FROM executions WHERE id = ANY(%s::uuid[])",
                ([key.split()[0] for key in keys],),
            ).fetchall()
        )
    session.server.drop_database(name)
    return [(last[key] - created[key.split()[0]]) * 1000 for key in keys]


def _wait_for_all(
    clients: list[subprocess.Popen[str]],
    keys: list[str],
    subscribers: int,
    timeout: float,
) -> dict[str, float]:
    """Wait until every subscriber got every key; the last receipt of each."""
    last: dict[str, float] = {}

    def complete() -> bool:
        counts = dict.fromkeys(keys, 0)
        for client in clients:
            client.stdin.write("\n")
            client.stdin.flush()
            records = json.loads(client.stdout.readline())
            for key in keys:
                count, at = records.get(key, (0, 0.0))
                counts[key] += count
                last[key] = max(last.get(key, 0.0), at)
        return all(count >= subscribers for count in counts.values())

    if not wait_until(complete, timeout=timeout, interval=0.2):
        raise RuntimeError("not every subscriber received every change")
    return last
