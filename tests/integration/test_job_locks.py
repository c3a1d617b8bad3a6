"""The order in which the API and the daemons lock a job and its executions.

Everything that changes both takes the job's row first, so deleteJob (whose
delete cascades to the executions), triggerJob and a daemon writing results
wait for each other instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
from api_helpers import api_client, create_job, graphql
from fastapi.testclient import TestClient

from daemon import queue
from daemon.worker import Worker
from tests.support.daemons import settings_for

TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"
DELETE = "mutation ($id: ID!) { deleteJob(id: $id) { __typename } }"


def one_off(url: str) -> dict[str, Any]:
    return {
        "name": "far off",
        "schedule": {"at": "2099-01-01T00:00:00Z"},
        "action": {"webhook": {"url": url}},
        "maxRetries": 0,
    }


async def post(client: TestClient, query: str, job_id: str) -> dict[str, Any]:
    """One GraphQL call, in a thread, so that many can be under way at once."""
    response = await asyncio.to_thread(
        client.post, "/graphql", json={"query": query, "variables": {"id": job_id}}
    )
    return response.json()


async def wait_for_lock_wait(db: psycopg.AsyncConnection, where: str) -> None:
    """Poll until a backend matching ``where`` waits for a row lock."""
    deadline = time.monotonic() + 10
    while True:
        cur = await db.execute(
            "SELECT count(*) FROM pg_stat_activity"
            f" WHERE wait_event_type = 'Lock' AND {where}"
        )
        if (await cur.fetchone())[0]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no backend waits for a lock where {where}")
        await asyncio.sleep(0.01)


async def test_a_result_written_while_the_job_is_deleted_waits_instead_of_deadlocking(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """deleteJob holds the job and waits for the execution (held here by a third
    transaction); then a daemon writes that execution's result. The daemon
    must wait for the job before touching the execution: the delete finishes,
    and the result, whose run no longer exists, is not written."""
    daemon_id = uuid.uuid4()
    with api_client(database_url, env="production") as client:
        job_id = create_job(client, **one_off("http://127.0.0.1:9/x"))["id"]
        graphql(client, TRIGGER, {"id": job_id})
        async with (
            await psycopg.AsyncConnection.connect(
                database_url, autocommit=True
            ) as daemon,
            await psycopg.AsyncConnection.connect(database_url) as holder,
        ):
            await queue.register(
                daemon, daemon_id=daemon_id, hostname="test", pid=1, concurrency=1
            )
            _, (claim,) = await queue.schedule_and_claim(
                daemon,
                daemon_id=daemon_id,
                schedule_limit=10,
                claim_limit=1,
                lease_seconds=30,
            )
            # KEY SHARE stops the cascading delete, not the result's update.
            await holder.execute(
                "SELECT 1 FROM executions WHERE id = %s FOR KEY SHARE",
                (claim.execution_id,),
            )
            deleting = asyncio.create_task(post(client, DELETE, job_id))
            await wait_for_lock_wait(db, "query LIKE 'DELETE FROM jobs%'")

            failed = queue.Outcome(
                claim=claim,
                failed=True,
                status="FAILED",
                retry_delay=0.0,
                duration=0.1,
                http_status=None,
                result=None,
                error="connection refused",
                excerpt=None,
            )
            writing = asyncio.create_task(queue.finish(daemon, [failed]))
            await wait_for_lock_wait(db, f"pid = {daemon.info.backend_pid}")
            await holder.commit()

            deleted = await deleting
            accepted = await writing

    assert deleted == {"data": {"deleteJob": {"__typename": "Deleted"}}}
    assert accepted == set()


async def test_triggers_racing_a_delete_each_get_an_execution_or_not_found(
    database_url: str,
) -> None:
    """Three triggerJob, a deleteJob and three more triggerJob on one job, all
    at once, while a daemon runs the triggered executions and writes their
    failures: every call gets its normal answer, and the job is gone."""
    settings = settings_for(database_url, poll_seconds=0.05, retry_base_seconds=0.01)
    worker = Worker(settings)
    working = asyncio.create_task(worker.run())
    answers: list[dict[str, Any]] = []
    try:
        with api_client(database_url, env="production") as client:
            for _ in range(8):
                job = create_job(client, **one_off("http://127.0.0.1:9/x"))
                calls = [TRIGGER] * 3 + [DELETE] + [TRIGGER] * 3
                answers += await asyncio.gather(
                    *(post(client, query, job["id"]) for query in calls)
                )
                left = graphql(client, "query ($id: ID!) { job(id: $id) { id } }", job)
                assert left == {"job": None}
    finally:
        worker.stop()
        await working

    for answer in answers:
        assert "errors" not in answer, answer
        (typename,) = {value["__typename"] for value in answer["data"].values()}
        assert typename in {"Execution", "Deleted", "NotFound"}, answer
