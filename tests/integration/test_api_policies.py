"""Scheduling policies through the API, and cancelling executions."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, count_rows, create_job, graphql, interval_job
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from test_api_subscriptions import subscription

POLICIES = """
  policies {
    catchUp catchUpLimit misfireGraceSeconds overlap maxInFlight jitterSeconds
    pauseAfterFailures
  }
  consecutiveFailures
"""
RESULT = f"""
  __typename
  ... on Job {{ id {POLICIES} }}
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
JOB = f"query ($id: ID!) {{ job(id: $id) {{ id {POLICIES} }} }}"
PAUSE = "mutation ($id: ID!) { pauseJob(id: $id) { __typename } }"
RESUME = f"mutation ($id: ID!) {{ resumeJob(id: $id) {{ {RESULT} }} }}"
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { ... on Execution { id } } }"
EXECUTION = """
query ($id: ID!) { execution(id: $id) { trigger status covers reason runAt } }
"""
CANCEL = """
mutation ($id: ID!) {
  cancelExecution(id: $id) {
    __typename
    ... on Execution {
      id status reason trigger covers runAt finishedAt attempts { number }
    }
    ... on InvalidInput { message errors { field message } }
    ... on NotFound { message id }
  }
}
"""

DEFAULTS = {
    "catchUp": "LATEST",
    "catchUpLimit": 10,
    "misfireGraceSeconds": 60,
    "overlap": "FORBID",
    "maxInFlight": 5,
    "jitterSeconds": 0,
    "pauseAfterFailures": None,
}
CUSTOM = {
    "catchUp": "ALL",
    "catchUpLimit": 3,
    "misfireGraceSeconds": 0,
    "overlap": "REPLACE",
    "maxInFlight": 2,
    "jitterSeconds": 30,
    "pauseAfterFailures": 4,
}


def _create(client: TestClient, **extra: Any) -> dict[str, Any]:
    return graphql(client, CREATE, {"input": interval_job(**extra)})["createJob"]


def _update(client: TestClient, job_id: str, **values: Any) -> dict[str, Any]:
    variables = {"id": job_id, "input": values}
    return graphql(client, UPDATE, variables)["updateJob"]


def _execution(database_url: str, execution_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT * FROM executions WHERE id = %s", (execution_id,)
        ).fetchone()


def _received(ws: WebSocketTestSession) -> dict[str, Any]:
    message = ws.receive_json()
    assert message["type"] == "next", message
    return message["payload"]["data"]["executionUpdates"]


def test_a_job_without_policies_gets_the_defaults(database_url: str) -> None:
    """createJob without policies reads back LATEST, FORBID and the default limits."""
    with api_client(database_url) as client:
        job = _create(client)

    assert job["policies"] == DEFAULTS
    assert job["consecutiveFailures"] == 0


def test_policies_given_on_create_read_back_and_are_stored(
    database_url: str,
) -> None:
    """Every policy given to createJob comes back from job() and sits in its column."""
    with api_client(database_url) as client:
        job = _create(client, policies=CUSTOM)
        read = graphql(client, JOB, {"id": job["id"]})["job"]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT catch_up, catch_up_limit, misfire_grace_seconds, overlap,"
            " max_in_flight, jitter_seconds, pause_after_failures FROM jobs"
        ).fetchone()

    assert job["policies"] == read["policies"] == CUSTOM
    assert stored == ("ALL", 3, 0, "REPLACE", 2, 30, 4)


def test_policies_left_out_of_create_take_their_defaults(database_url: str) -> None:
    """createJob with only overlap given keeps the default for every other policy."""
    with api_client(database_url) as client:
        job = _create(client, policies={"overlap": "ALLOW"})

    assert job["policies"] == {**DEFAULTS, "overlap": "ALLOW"}


def test_updating_policies_keeps_those_left_out(database_url: str) -> None:
    """updateJob with two policies changes those two and keeps the rest."""
    with api_client(database_url) as client:
        job = _create(client, policies=CUSTOM)
        updated = _update(
            client, job["id"], policies={"catchUp": "NONE", "jitterSeconds": 5}
        )

    assert updated["policies"] == {**CUSTOM, "catchUp": "NONE", "jitterSeconds": 5}


def test_an_explicit_null_turns_auto_pause_off(database_url: str) -> None:
    """pauseAfterFailures: null on updateJob clears it; left out, it stays."""
    with api_client(database_url) as client:
        job = _create(client, policies={"pauseAfterFailures": 3})
        kept = _update(client, job["id"], policies={"maxInFlight": 7})
        cleared = _update(client, job["id"], policies={"pauseAfterFailures": None})

    assert kept["policies"]["pauseAfterFailures"] == 3
    assert cleared["policies"]["pauseAfterFailures"] is None
    assert cleared["policies"]["maxInFlight"] == 7


def test_applying_a_key_again_resets_the_policies_it_leaves_out(
    database_url: str,
) -> None:
    """createJob on an existing key is the whole definition: omitted policies
    return to their defaults."""
    with api_client(database_url) as client:
        first = _create(client, key="nightly", policies=CUSTOM)
        again = _create(client, key="nightly", policies={"jitterSeconds": 9})

    assert again["id"] == first["id"]
    assert again["policies"] == {**DEFAULTS, "jitterSeconds": 9}


BAD_POLICIES = [
    ({"catchUpLimit": 0}, "policies.catchUpLimit"),
    ({"catchUpLimit": 1001}, "policies.catchUpLimit"),
    ({"misfireGraceSeconds": -1}, "policies.misfireGraceSeconds"),
    ({"misfireGraceSeconds": 86_401}, "policies.misfireGraceSeconds"),
    ({"maxInFlight": 0}, "policies.maxInFlight"),
    ({"maxInFlight": 1001}, "policies.maxInFlight"),
    ({"jitterSeconds": -1}, "policies.jitterSeconds"),
    ({"jitterSeconds": 3601}, "policies.jitterSeconds"),
    ({"pauseAfterFailures": 0}, "policies.pauseAfterFailures"),
    ({"pauseAfterFailures": 1001}, "policies.pauseAfterFailures"),
]


@pytest.mark.parametrize(
    ("policies", "field"), BAD_POLICIES, ids=[f for _, f in BAD_POLICIES]
)
def test_a_bad_policy_on_create_names_its_field_and_stores_nothing(
    database_url: str, policies: dict[str, int], field: str
) -> None:
    """A policy outside its range is InvalidInput under policies.<name>; no job."""
    with api_client(database_url) as client:
        result = _create(client, policies=policies)

    assert result["__typename"] == "InvalidInput", result
    assert [e["field"] for e in result["errors"]] == [field]
    assert count_rows(database_url, "jobs") == 0


def test_a_bad_policy_on_update_changes_nothing(database_url: str) -> None:
    """updateJob with a good name and two bad policies names both, applies none."""
    with api_client(database_url) as client:
        job = _create(client)
        result = _update(
            client,
            job["id"],
            name="renamed",
            policies={"overlap": "ALLOW", "maxInFlight": 0, "jitterSeconds": 4000},
        )
        read = graphql(client, JOB, {"id": job["id"]})["job"]

    assert result["__typename"] == "InvalidInput"
    fields = {e["field"] for e in result["errors"]}
    assert fields == {"policies.maxInFlight", "policies.jitterSeconds"}
    assert read["policies"] == DEFAULTS


def test_resuming_starts_the_failure_count_afresh(database_url: str) -> None:
    """A job auto-paused after failures resumes with consecutiveFailures at 0."""
    with api_client(database_url) as client:
        job = _create(client, policies={"pauseAfterFailures": 2})
        # What the daemon does after the second failure in a row.
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE jobs SET state = 'PAUSED', consecutive_failures = 2,"
                " state_reason = 'paused after 2 failed executions in a row'"
            )
        paused = graphql(client, JOB, {"id": job["id"]})["job"]
        resumed = graphql(client, RESUME, {"id": job["id"]})["resumeJob"]

    assert paused["consecutiveFailures"] == 2
    assert resumed["consecutiveFailures"] == 0


def test_a_missed_gap_reads_back_with_its_trigger_covers_and_reason(
    database_url: str,
) -> None:
    """A MISSED execution the daemon recorded shows SCHEDULE, covers and reason."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with psycopg.connect(database_url) as conn:
            (execution_id,) = conn.execute(
                "INSERT INTO executions (id, job_id, trigger, status, scheduled_for,"
                " run_at, covers, reason, attempt, failures, fence) VALUES"
                " (gen_random_uuid(), %s, 'SCHEDULE', 'MISSED', '2030-01-01T00:00Z',"
                " '2030-01-01T00:00Z', 12, 'outage', 0, 0, 0)"
                " RETURNING id",
                (job["id"],),
            ).fetchone()
        read = graphql(client, EXECUTION, {"id": str(execution_id)})["execution"]

    assert read == {
        "trigger": "SCHEDULE",
        "status": "MISSED",
        "covers": 12,
        "reason": "outage",
        "runAt": "2030-01-01T00:00:00+00:00",
    }


def test_cancelling_a_pending_execution_fences_and_announces_it(
    database_url: str,
) -> None:
    """cancelExecution on a PENDING run returns it CANCELLED with its reason,
    bumps its fence, and subscribers see the change."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with subscription(client, {"jobId": job["id"]}) as ws:
            execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
            before = _execution(database_url, execution["id"])
            assert _received(ws)["status"] == "PENDING"
            cancelled = graphql(client, CANCEL, {"id": execution["id"]})
            update = _received(ws)
        after = _execution(database_url, execution["id"])

    result = cancelled["cancelExecution"]
    assert result["__typename"] == "Execution"
    assert (result["id"], result["status"]) == (execution["id"], "CANCELLED")
    assert result["reason"] == "cancelled by a user"
    assert result["finishedAt"] is not None
    assert result["attempts"] == []
    assert after["fence"] == before["fence"] + 1
    assert (after["status"], after["reason"]) == ("CANCELLED", "cancelled by a user")
    assert (update["id"], update["status"]) == (execution["id"], "CANCELLED")


def test_cancelling_a_running_execution_records_its_attempt(
    database_url: str,
) -> None:
    """A RUNNING execution is cancelled with its attempt kept as CANCELLED."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
        # What a daemon's claim does.
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE executions SET status = 'RUNNING', attempt = 1,"
                " fence = fence + 1, started_at = tickwork_now(),"
                " lease_expires_at = tickwork_now() + interval '1 minute'"
            )
        result = graphql(client, CANCEL, {"id": execution["id"]})["cancelExecution"]
    with psycopg.connect(database_url) as conn:
        attempts = conn.execute("SELECT number, outcome FROM attempts").fetchall()

    assert result["status"] == "CANCELLED"
    assert attempts == [(1, "CANCELLED")]


@pytest.mark.parametrize("status", ["SUCCEEDED", "CANCELLED"])
def test_cancelling_a_finished_execution_says_its_status(
    database_url: str, status: str
) -> None:
    """An execution already final is InvalidInput on id, naming its status."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE executions SET status = %s, finished_at = tickwork_now()",
                (status,),
            )
        before = _execution(database_url, execution["id"])
        result = graphql(client, CANCEL, {"id": execution["id"]})["cancelExecution"]

    assert result["__typename"] == "InvalidInput"
    assert result["errors"] == [
        {"field": "id", "message": f"execution is already {status}"}
    ]
    assert _execution(database_url, execution["id"]) == before


@pytest.mark.parametrize("execution_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_cancelling_an_unknown_execution_is_not_found(
    database_url: str, execution_id: str
) -> None:
    """cancelExecution answers NotFound for an unknown or malformed id."""
    with api_client(database_url) as client:
        result = graphql(client, CANCEL, {"id": execution_id})["cancelExecution"]

    assert result["__typename"] == "NotFound"
    assert result["id"] == execution_id
    assert result["message"] == f"no execution with id {execution_id}"
