"""Pausing, resuming, triggering and deleting jobs; unknown ids."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg
import pytest
from api_helpers import (
    JOB_RESULT,
    api_client,
    count_rows,
    create_job,
    graphql,
    interval_job,
)

PAUSE = f"mutation ($id: ID!) {{ pauseJob(id: $id) {{ {JOB_RESULT} }} }}"
RESUME = f"mutation ($id: ID!) {{ resumeJob(id: $id) {{ {JOB_RESULT} }} }}"
TRIGGER = """
mutation ($id: ID!) {
  triggerJob(id: $id) {
    __typename
    ... on Execution {
      id jobId status trigger attempt scheduledFor startedAt finishedAt durationMs
      httpStatus result error attempts { number }
    }
    ... on NotFound { message id }
  }
}
"""
DELETE = """
mutation ($id: ID!) {
  deleteJob(id: $id) { __typename ... on Deleted { id } ... on NotFound { id } }
}
"""
EXECUTION = """
query ($id: ID!) {
  execution(id: $id) {
    id status durationMs httpStatus result error
    attempts { number daemonId outcome httpStatus error responseExcerpt }
  }
}
"""


def _set_next_run(database_url: str, job_id: str, value: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "UPDATE jobs SET next_run_at = %s WHERE id = %s", (value, job_id)
        )


def test_pausing_keeps_the_next_run_and_resuming_recomputes_it(
    database_url: str,
) -> None:
    """A paused job keeps nextRunAt; resume sets it from the database clock."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        _set_next_run(database_url, job["id"], "2001-01-01T00:00:00Z")
        paused = graphql(client, PAUSE, {"id": job["id"]})["pauseJob"]
        resumed = graphql(client, RESUME, {"id": job["id"]})["resumeJob"]

    assert paused["state"] == "PAUSED"
    assert paused["nextRunAt"] == "2001-01-01T00:00:00+00:00"
    assert resumed["state"] == "ACTIVE"
    assert datetime.fromisoformat(resumed["nextRunAt"]).year > 2001


def test_triggering_queues_a_pending_manual_execution(database_url: str) -> None:
    """triggerJob returns a PENDING MANUAL execution with no scheduled time."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    assert execution["__typename"] == "Execution"
    assert execution["jobId"] == job["id"]
    assert (execution["status"], execution["trigger"]) == ("PENDING", "MANUAL")
    assert execution["scheduledFor"] is None
    assert execution["attempts"] == []
    assert execution["durationMs"] is None
    assert count_rows(database_url, "executions") == 1


def test_a_finished_execution_shows_its_attempts_and_duration(
    database_url: str,
) -> None:
    """An execution the daemon finished reads back with attempts in order."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
        with psycopg.connect(database_url) as connection:
            connection.execute(
                "UPDATE executions SET status = 'SUCCEEDED', attempt = 2,"
                " started_at = '2030-01-01T00:00:01Z',"
                " finished_at = '2030-01-01T00:00:01.250Z',"
                " http_status = 200, result = '{\"ok\": true}' WHERE id = %s",
                (execution["id"],),
            )
            connection.execute(
                "INSERT INTO attempts (execution_id, number, outcome, started_at,"
                " finished_at, http_status, error) VALUES"
                " (%s, 2, 'SUCCEEDED', '2030-01-01T00:00:01Z',"
                "  '2030-01-01T00:00:01.25Z', 200, NULL),"
                " (%s, 1, 'FAILED', '2030-01-01T00:00:00Z',"
                "  '2030-01-01T00:00:00.5Z', 503, 'HTTP 503')",
                (execution["id"], execution["id"]),
            )
        read = graphql(client, EXECUTION, {"id": execution["id"]})["execution"]

    assert read["status"] == "SUCCEEDED"
    assert read["durationMs"] == 250
    assert (read["httpStatus"], read["result"]) == (200, {"ok": True})
    assert [a["number"] for a in read["attempts"]] == [1, 2]
    assert read["attempts"][0]["outcome"] == "FAILED"
    assert read["attempts"][0]["error"] == "HTTP 503"


def test_deleting_a_job_removes_it_and_its_executions(database_url: str) -> None:
    """deleteJob returns Deleted; the job and its executions are gone."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        graphql(client, TRIGGER, {"id": job["id"]})
        deleted = graphql(client, DELETE, {"id": job["id"]})["deleteJob"]
        again = graphql(client, DELETE, {"id": job["id"]})["deleteJob"]

    assert deleted == {"__typename": "Deleted", "id": job["id"]}
    assert again == {"__typename": "NotFound", "id": job["id"]}
    assert count_rows(database_url, "jobs") == 0
    assert count_rows(database_url, "executions") == 0


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", ""])
def test_unknown_ids_are_not_found_and_change_nothing(
    database_url: str, job_id: str
) -> None:
    """Every job mutation answers NotFound for an unknown or malformed id."""
    update = f"""mutation ($id: ID!) {{
      updateJob(id: $id, input: {{name: "x"}}) {{ {JOB_RESULT} }} }}"""
    with api_client(database_url) as client:
        results = [
            graphql(client, query, {"id": job_id})
            for query in (PAUSE, RESUME, TRIGGER, DELETE, update)
        ]
        job = graphql(
            client, "query ($id: ID!) { job(id: $id) { id } }", {"id": job_id}
        )
        execution = graphql(
            client, "query ($id: ID!) { execution(id: $id) { id } }", {"id": job_id}
        )

    for result in results:
        (value,) = result.values()
        assert value["__typename"] == "NotFound", value
        assert value["id"] == job_id
    assert job == {"job": None}
    assert execution == {"execution": None}
    assert count_rows(database_url, "executions") == 0


def test_job_mutations_wake_the_daemons(database_url: str) -> None:
    """createJob and triggerJob NOTIFY tickwork_wakeup when they commit."""
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN tickwork_wakeup")
        with api_client(database_url) as client:
            job = create_job(client, **interval_job())
            graphql(client, TRIGGER, {"id": job["id"]})
        notices = list(listener.notifies(timeout=5, stop_after=2))

    assert [n.channel for n in notices] == ["tickwork_wakeup"] * 2
