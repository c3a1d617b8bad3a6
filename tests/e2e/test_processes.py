"""End to end: real `tickwork` processes, a real database and a real target.

`tickwork api` and two `tickwork daemon`s run as subprocesses against a fresh
database. A job is created over GraphQL, the local target receives its
webhook, and the run is seen over the GraphQL subscription.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from shared.migrate import upgrade
from tests.support.processes import Tickwork, poll
from tests.support.target import Target

pytestmark = pytest.mark.e2e

CREATE = """
mutation Create($input: CreateJobInput!) {
  createJob(input: $input) {
    __typename
    ... on Job { id nextRunAt }
    ... on InvalidInput { errors { field message } }
  }
}
"""

EXECUTIONS = """
query Executions($id: ID!) {
  job(id: $id) {
    executions(first: 10) {
      edges { node { id status httpStatus result error attempt } }
    }
  }
}
"""


@pytest.fixture
def tickwork(database_url: str, tmp_path: Path) -> Iterator[Tickwork]:
    upgrade(database_url)  # a no-op on a migrated database; `migrate` is tested below
    system = Tickwork(database_url, tmp_path)
    system.start("api")
    system.start("daemon")
    system.start("daemon")
    try:
        system.wait_ready()
        yield system
    finally:
        api, *daemons = system.stop()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert api in (0, -signal.SIGTERM), f"api exit {api}; logs in {tmp_path}"
        assert daemons == [0, 0], f"daemon exits {daemons}; logs in {tmp_path}"


def executions(tickwork: Tickwork, job_id: str) -> list[dict]:
    data = tickwork.graphql(EXECUTIONS, id=job_id)
    return [edge["node"] for edge in data["job"]["executions"]["edges"]]


async def subscribe(
    url: str, token: str, ready: asyncio.Event, seen: list[dict]
) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"token": token}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription { executionUpdates "
                        "{ id jobId status httpStatus } }"
                    },
                }
            )
        )
        ready.set()
        async for message in ws:
            event = json.loads(message)
            if event["type"] == "next":
                seen.append(event["payload"]["data"]["executionUpdates"])
                if seen[-1]["status"] == "SUCCEEDED":
                    return


def test_a_webhook_job_created_over_graphql_is_delivered_and_seen_live(
    tickwork: Tickwork,
) -> None:
    """An interval webhook job POSTs within 3 s of creation, reads back SUCCEEDED
    with its status code, and the run streams over the subscription."""
    with Target() as target:
        loop = asyncio.new_event_loop()
        ready = asyncio.Event()
        seen: list[dict] = []
        ws_url = f"ws://127.0.0.1:{tickwork.port}/graphql"
        listener = loop.create_task(subscribe(ws_url, tickwork.token, ready, seen))
        loop.run_until_complete(asyncio.wait_for(ready.wait(), 10))

        created_at = time.monotonic()
        data = tickwork.graphql(
            CREATE,
            input={
                "name": "e2e webhook",
                "schedule": {"intervalSeconds": 2},
                "action": {"webhook": {"url": target.url("/ok")}},
                "payload": {"hello": "world"},
            },
        )
        job = data["createJob"]
        assert job["__typename"] == "Job", job

        [request] = target.wait_for(1, timeout=3.0)
        delivery_seconds = time.monotonic() - created_at
        assert delivery_seconds < 3.0
        assert request.json()["payload"] == {"hello": "world"}

        loop.run_until_complete(asyncio.wait_for(listener, 10))
        loop.close()
        assert {"jobId": job["id"], "status": "SUCCEEDED"}.items() <= seen[-1].items()

        def succeeded() -> list[dict]:
            return [
                e for e in executions(tickwork, job["id"]) if e["status"] == "SUCCEEDED"
            ]

        [first, *_] = poll(succeeded, timeout=5)
        assert first["httpStatus"] == 200
        ids = {e["id"] for e in executions(tickwork, job["id"])}
        assert request.headers["idempotency-key"] in ids
        print(f"first delivery {delivery_seconds * 1000:.0f} ms after createJob")


def test_the_test_job_stores_the_quote_it_fetched(tickwork: Tickwork) -> None:
    """`createTestJob` fetches the API's built-in quote and keeps it as the result."""
    job = tickwork.graphql("mutation { createTestJob { ... on Job { id } } }")[
        "createTestJob"
    ]

    def quote() -> list[dict]:
        runs = executions(tickwork, job["id"])
        return [e["result"] for e in runs if e["status"] == "SUCCEEDED"]

    [result, *_] = poll(quote, timeout=10)
    assert result["content"] and result["author"]


def test_migrate_is_a_command_of_its_own(database_url: str) -> None:
    """`tickwork migrate` brings a database up to date and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "migrate"],
        env={**os.environ, "TICKWORK_DATABASE_URL": database_url},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
