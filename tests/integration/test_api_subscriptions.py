"""Live execution updates over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, create_job, graphql, interval_job, wait_for
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

SUBSCRIBE = """
subscription ($jobId: ID) {
  executionUpdates(jobId: $jobId) { id jobId status trigger attempts { number } }
}
"""
TRIGGER = """
mutation ($id: ID!) { triggerJob(id: $id) { ... on Execution { id } } }
"""
LISTEN_BACKEND = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND query = 'LISTEN tickwork_executions'"
)


@contextmanager
def subscription(
    client: TestClient, variables: dict[str, Any]
) -> Iterator[WebSocketTestSession]:
    """A WebSocket subscribed to executionUpdates, once the API is listening."""
    broadcaster = client.app.state.tickwork.broadcaster
    with client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": variables},
            }
        )
        # No message acknowledges a subscribe, so wait until it is registered.
        wait_for(
            lambda: broadcaster.listening.is_set() and broadcaster.subscriber_count == 1
        )
        yield ws
        ws.send_json({"id": "1", "type": "complete"})
    wait_for(lambda: broadcaster.subscriber_count == 0)


def _next(ws: WebSocketTestSession) -> dict[str, Any]:
    message = ws.receive_json()
    assert message["type"] == "next", message
    return message["payload"]["data"]["executionUpdates"]


def test_a_triggered_execution_arrives_on_the_subscription(
    database_url: str,
) -> None:
    """Subscribed to every job, a trigger from another request shows up PENDING."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with subscription(client, {}) as ws:
            triggered = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
            update = _next(ws)

    assert update == {
        "id": triggered["id"],
        "jobId": job["id"],
        "status": "PENDING",
        "trigger": "MANUAL",
        "attempts": [],
    }


def test_a_status_change_arrives_on_the_subscription(database_url: str) -> None:
    """When a daemon moves an execution to RUNNING, subscribers see it."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with subscription(client, {"jobId": job["id"]}) as ws:
            execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
            assert _next(ws)["status"] == "PENDING"
            # What a daemon's claim does: change the row and announce it.
            with psycopg.connect(database_url) as connection:
                connection.execute(
                    "UPDATE executions SET status = 'RUNNING' WHERE id = %s",
                    (execution["id"],),
                )
                connection.execute(
                    "SELECT tickwork_notify_executions(ARRAY[%s]::uuid[])",
                    (execution["id"],),
                )
            update = _next(ws)

    assert (update["id"], update["status"]) == (execution["id"], "RUNNING")


def test_a_job_filter_passes_only_that_jobs_executions(database_url: str) -> None:
    """Subscribed to job A, triggering B then A delivers only A's execution."""
    with api_client(database_url) as client:
        job_a = create_job(client, **interval_job("a"))
        job_b = create_job(client, **interval_job("b"))
        with subscription(client, {"jobId": job_a["id"]}) as ws:
            graphql(client, TRIGGER, {"id": job_b["id"]})
            graphql(client, TRIGGER, {"id": job_a["id"]})
            update = _next(ws)

    assert update["jobId"] == job_a["id"]


def test_after_the_listener_reconnects_missed_executions_are_resent(
    database_url: str,
) -> None:
    """An execution inserted without a NOTIFY arrives once the listener reconnects.

    The interleaving forced: subscribe; insert an execution without announcing
    it (a lost notification); kill the LISTEN backend; the broadcaster
    reconnects and the subscription re-reads the unfinished executions.
    """
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with subscription(client, {"jobId": job["id"]}) as ws:
            with psycopg.connect(database_url, autocommit=True) as admin:
                (missed,) = admin.execute(
                    "INSERT INTO executions (id, job_id, trigger, status, run_at,"
                    " attempt, failures, fence) VALUES (gen_random_uuid(), %s,"
                    " 'MANUAL', 'PENDING', now(), 0, 0, 0) RETURNING id",
                    (job["id"],),
                ).fetchone()
                (old_pid,) = admin.execute(LISTEN_BACKEND).fetchone()
                admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
            update = _next(ws)

    assert (update["id"], update["status"]) == (str(missed), "PENDING")


def test_closing_the_socket_unregisters_the_subscriber(database_url: str) -> None:
    """A client that disconnects without completing leaves no subscriber behind."""
    with api_client(database_url) as client:
        broadcaster = client.app.state.tickwork.broadcaster
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"]
        ) as ws:
            ws.send_json({"type": "connection_init"})
            ws.receive_json()
            ws.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}
            )
            wait_for(lambda: broadcaster.subscriber_count == 1)
        wait_for(lambda: broadcaster.subscriber_count == 0)


def test_the_legacy_graphql_ws_protocol_is_refused(database_url: str) -> None:
    """Only graphql-transport-ws is spoken; the legacy protocol is closed 4406."""
    with api_client(database_url) as client:
        with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
            message = ws.receive()

    assert message["type"] == "websocket.close"
    assert message["code"] == 4406


@pytest.mark.parametrize("job_id", ["", "not-a-uuid"])
def test_a_job_id_that_is_not_one_is_refused(database_url: str, job_id: str) -> None:
    """An empty or malformed jobId is an error, not a subscription to every job."""
    with api_client(database_url) as client:
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"]
        ) as ws:
            ws.send_json({"type": "connection_init"})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIBE, "variables": {"jobId": job_id}},
                }
            )
            message = ws.receive_json()

    assert message["type"] == "next"
    [error] = message["payload"]["errors"]
    assert error["message"] == "jobId: not a job id"
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
