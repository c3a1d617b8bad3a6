"""Retrying executions from the API, and the per-job retry backoff policies."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, count_rows, graphql, interval_job
from fastapi.testclient import TestClient
from test_api_subscriptions import subscription

from daemon import queue
from daemon.queue import Claim, Outcome

TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { ... on Execution { id } } }"
RETRY = """
mutation ($id: ID!) {
  retryExecution(id: $id) {
    __typename
    ... on Execution { id status reason runAt finishedAt attempt attempts { number } }
    ... on InvalidInput { message errors { field message } }
    ... on NotFound { message id }
  }
}
"""
BACKOFF = "policies { retryBaseSeconds retryMaxSeconds }"
RESULT = f"""
  __typename
  ... on Job {{ id {BACKOFF} }}
  ... on InvalidInput {{ message errors {{ field message }} }}
"""
CREATE = f"""
mutation ($input: CreateJobInput!) {{ createJob(input: $input) {{ {RESULT} }} }}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateJobInput!) {{
  updateJob(id: $id, input: $input) {{ {RESULT} }}
}}
"""
DAEMON_DEFAULTS = {"retryBaseSeconds": None, "retryMaxSeconds": None}


def _finished_execution(
    client: TestClient, database_url: str, status: str
) -> dict[str, Any]:
    """A manual run of a new job that ended ``status`` after two attempts."""
    job = graphql(client, CREATE, {"input": interval_job()})["createJob"]
    execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE executions SET status = %s, attempt = 2, failures = 2, fence = 2,"
            " started_at = tickwork_now(), finished_at = tickwork_now(),"
            " error = 'HTTP 503', run_at = tickwork_now() - interval '1 hour'",
            (status,),
        )
        for number in (1, 2):
            conn.execute(
                "INSERT INTO attempts (execution_id, number, outcome, started_at,"
                " finished_at) VALUES (%s, %s, 'FAILED', now(), now())",
                (execution["id"], number),
            )
    return execution


def _row(database_url: str, execution_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT *, tickwork_now() AS now FROM executions WHERE id = %s",
            (execution_id,),
        ).fetchone()


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_retrying_makes_the_execution_due_now_with_its_retries_afresh(
    database_url: str, status: str
) -> None:
    """retryExecution turns a FAILED or CANCELLED run PENDING at the database's
    now, with failures 0, its fence moved on and its attempts kept."""
    with api_client(database_url) as client:
        execution = _finished_execution(client, database_url, status)
        result = graphql(client, RETRY, {"id": execution["id"]})["retryExecution"]
    row = _row(database_url, execution["id"])

    assert result["__typename"] == "Execution"
    assert (result["id"], result["status"]) == (execution["id"], "PENDING")
    assert result["reason"] == "retried by a user"
    assert result["finishedAt"] is None
    assert [a["number"] for a in result["attempts"]] == [1, 2]
    assert (row["status"], row["failures"], row["fence"]) == ("PENDING", 0, 3)
    assert row["attempt"] == 2
    assert row["run_at"] <= row["now"]
    assert row["lease_expires_at"] is None


def test_retrying_announces_the_change_and_wakes_the_daemons(
    database_url: str,
) -> None:
    """Subscribers see the run PENDING again, and daemons get a wake-up."""
    with (
        api_client(database_url) as client,
        psycopg.connect(database_url, autocommit=True) as listener,
    ):
        execution = _finished_execution(client, database_url, "FAILED")
        listener.execute("LISTEN tickwork_wakeup")
        with subscription(client, {}) as ws:
            graphql(client, RETRY, {"id": execution["id"]})
            message = ws.receive_json()
        wakeups = list(listener.notifies(timeout=5, stop_after=1))

    update = message["payload"]["data"]["executionUpdates"]
    assert (update["id"], update["status"]) == (execution["id"], "PENDING")
    assert [n.channel for n in wakeups] == ["tickwork_wakeup"]


async def _claim_and_report_late(database_url: str) -> tuple[Claim, set[uuid.UUID]]:
    """A daemon's claim of the due run, and which ids accept a result written
    under the fence the run had before it was retried."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        _, [claim] = await queue.schedule_and_claim(
            conn,
            daemon_id=uuid.uuid4(),
            schedule_limit=0,
            claim_limit=10,
            lease_seconds=30,
        )
        late = Outcome(
            claim=dataclasses.replace(claim, fence=2),
            failed=True,
            status="FAILED",
            retry_delay=0,
            duration=0.1,
            http_status=503,
            result=None,
            error="the attempt from before the retry, reporting late",
            excerpt=None,
        )
        accepted = await queue.finish(conn, [late])
    return claim, accepted


def test_a_daemon_claims_the_retried_run_as_its_next_attempt(
    database_url: str,
) -> None:
    """The retried run is claimed as attempt 3 under a new fence, and a result
    the daemon that held it before writes now is rejected."""
    with api_client(database_url) as client:
        execution = _finished_execution(client, database_url, "CANCELLED")
        graphql(client, RETRY, {"id": execution["id"]})

    claim, accepted = asyncio.run(_claim_and_report_late(database_url))

    assert str(claim.execution_id) == execution["id"]
    assert (claim.attempt, claim.fence, claim.failures) == (3, 4, 0)
    assert accepted == set()
    assert _row(database_url, execution["id"])["status"] == "RUNNING"


@pytest.mark.parametrize(
    "status", ["PENDING", "RUNNING", "RETRYING", "SUCCEEDED", "SKIPPED", "MISSED"]
)
def test_retrying_any_other_status_names_it_and_changes_nothing(
    database_url: str, status: str
) -> None:
    """Only FAILED and CANCELLED runs retry: others are InvalidInput on id."""
    with api_client(database_url) as client:
        execution = _finished_execution(client, database_url, status)
        before = _row(database_url, execution["id"])
        result = graphql(client, RETRY, {"id": execution["id"]})["retryExecution"]
    after = _row(database_url, execution["id"])

    assert result["__typename"] == "InvalidInput"
    assert result["errors"] == [
        {
            "field": "id",
            "message": f"execution is {status}: only FAILED or CANCELLED ones "
            "can be retried",
        }
    ]
    assert {**after, "now": None} == {**before, "now": None}


@pytest.mark.parametrize("execution_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_retrying_an_unknown_execution_is_not_found(
    database_url: str, execution_id: str
) -> None:
    """retryExecution answers NotFound for an unknown or malformed id."""
    with api_client(database_url) as client:
        result = graphql(client, RETRY, {"id": execution_id})["retryExecution"]

    assert result["__typename"] == "NotFound"
    assert result["message"] == f"no execution with id {execution_id}"


def _create(client: TestClient, **extra: Any) -> dict[str, Any]:
    return graphql(client, CREATE, {"input": interval_job(**extra)})["createJob"]


def _update(client: TestClient, job_id: str, **policies: Any) -> dict[str, Any]:
    variables = {"id": job_id, "input": {"policies": policies}}
    return graphql(client, UPDATE, variables)["updateJob"]


def _stored_backoff(database_url: str) -> tuple[float | None, float | None]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT retry_base_seconds, retry_max_seconds FROM jobs"
        ).fetchone()


def test_a_job_uses_the_daemons_backoff_unless_it_sets_its_own(
    database_url: str,
) -> None:
    """Left out, both are null; given, they read back and sit in their columns."""
    with api_client(database_url) as client:
        default = _create(client)
        graphql(
            client,
            "mutation ($id: ID!) { deleteJob(id: $id) { __typename } }",
            {"id": default["id"]},
        )
        custom = _create(
            client, policies={"retryBaseSeconds": 0.5, "retryMaxSeconds": 60}
        )

    assert default["policies"] == DAEMON_DEFAULTS
    assert custom["policies"] == {"retryBaseSeconds": 0.5, "retryMaxSeconds": 60.0}
    assert _stored_backoff(database_url) == (0.5, 60.0)


def test_updating_one_bound_keeps_the_other_and_null_restores_the_default(
    database_url: str,
) -> None:
    """updateJob changes the bound it gives; an explicit null clears it."""
    with api_client(database_url) as client:
        job = _create(client, policies={"retryBaseSeconds": 1, "retryMaxSeconds": 10})
        raised = _update(client, job["id"], retryMaxSeconds=600)
        cleared = _update(client, job["id"], retryBaseSeconds=None)

    assert raised["policies"] == {"retryBaseSeconds": 1.0, "retryMaxSeconds": 600.0}
    assert cleared["policies"] == {"retryBaseSeconds": None, "retryMaxSeconds": 600.0}


def test_applying_a_key_again_returns_the_backoff_to_the_daemons(
    database_url: str,
) -> None:
    """createJob on an existing key without the bounds sets them back to null."""
    with api_client(database_url) as client:
        _create(client, key="k", policies={"retryBaseSeconds": 3})
        again = _create(client, key="k")

    assert again["policies"] == DAEMON_DEFAULTS


BAD_BACKOFF = [
    ({"retryBaseSeconds": 0}, "policies.retryBaseSeconds"),
    ({"retryBaseSeconds": -1}, "policies.retryBaseSeconds"),
    ({"retryBaseSeconds": 86_400.5}, "policies.retryBaseSeconds"),
    ({"retryMaxSeconds": 0}, "policies.retryMaxSeconds"),
    ({"retryMaxSeconds": 86_401}, "policies.retryMaxSeconds"),
    ({"retryBaseSeconds": 20, "retryMaxSeconds": 10}, "policies.retryBaseSeconds"),
]


@pytest.mark.parametrize(
    ("policies", "field"), BAD_BACKOFF, ids=[str(p) for p, _ in BAD_BACKOFF]
)
def test_a_bad_backoff_on_create_names_its_field_and_stores_nothing(
    database_url: str, policies: dict[str, float], field: str
) -> None:
    """Out of range, or a base above the cap: InvalidInput on that field, no job."""
    with api_client(database_url) as client:
        result = _create(client, policies=policies)

    assert result["__typename"] == "InvalidInput", result
    assert [e["field"] for e in result["errors"]] == [field]
    assert count_rows(database_url, "jobs") == 0


def test_a_cap_below_the_stored_base_is_refused_on_update(database_url: str) -> None:
    """With base 30 stored, retryMaxSeconds 10 names retryMaxSeconds; the job keeps
    its values."""
    with api_client(database_url) as client:
        job = _create(client, policies={"retryBaseSeconds": 30})
        result = _update(client, job["id"], retryMaxSeconds=10)

    assert result["__typename"] == "InvalidInput"
    assert result["errors"] == [
        {
            "field": "policies.retryMaxSeconds",
            "message": "must be at least retryBaseSeconds (30)",
        }
    ]
    assert _stored_backoff(database_url) == (30.0, None)


def test_the_base_must_not_exceed_the_cap_stored_on_the_job(database_url: str) -> None:
    """With cap 10 stored, retryBaseSeconds 20 is refused under its own name."""
    with api_client(database_url) as client:
        job = _create(client, policies={"retryMaxSeconds": 10})
        result = _update(client, job["id"], retryBaseSeconds=20)

    assert [e["field"] for e in result["errors"]] == ["policies.retryBaseSeconds"]
    assert result["errors"][0]["message"] == "must be at most retryMaxSeconds (10)"
