"""Keyset pages of jobs and executions, and a fixed query count per page."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import api_client, create_job, graphql, interval_job
from fastapi.testclient import TestClient
from sqlalchemy import event

JOBS_PAGE = """
query ($first: Int, $after: String) {
  jobs(first: $first, after: $after) {
    edges { cursor node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

JOB_EXECUTIONS = """
query ($id: ID!, $first: Int, $after: String) {
  job(id: $id) {
    executions(first: $first, after: $after) {
      edges { node { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


def _insert_jobs(database_url: str, count: int) -> set[str]:
    """``count`` jobs in one transaction, so they share a created_at."""
    with api_client(database_url) as client:
        template = create_job(client, **interval_job())
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "INSERT INTO jobs (id, name, schedule, action, max_retries,"
            " timeout_seconds, state)"
            " SELECT gen_random_uuid(), 'job ' || n, schedule, action, 3, 30, 'ACTIVE'"
            " FROM jobs, generate_series(2, %s) AS n RETURNING id",
            (count,),
        ).fetchall()
    return {template["id"], *(str(row[0]) for row in rows)}


def _walk(client: TestClient, query: str, variables: dict[str, Any], size: int):
    """Every node id, following endCursor page by page."""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = graphql(client, query, {**variables, "first": size, "after": after})
        connection = data["jobs"] if "jobs" in data else data["job"]["executions"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            return seen, pages
        after = connection["pageInfo"]["endCursor"]


def test_walking_every_job_page_sees_each_job_once(database_url: str) -> None:
    """47 jobs with tied creation times, 10 a page: 5 pages, no gaps, no repeats."""
    expected = _insert_jobs(database_url, 47)
    with api_client(database_url) as client:
        seen, pages = _walk(client, JOBS_PAGE, {}, 10)

    assert pages == 5
    assert len(seen) == len(set(seen)) == 47
    assert set(seen) == expected


def test_walking_a_jobs_executions_sees_each_once_newest_first(
    database_url: str,
) -> None:
    """A job's 25 executions walked 7 at a time come newest first, each once."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        with psycopg.connect(database_url) as connection:
            connection.execute(
                "INSERT INTO executions (id, job_id, trigger, status, run_at, attempt,"
                " failures, fence, created_at)"
                " SELECT gen_random_uuid(), %s, 'MANUAL', 'PENDING', now(), 0, 0, 0,"
                " now() - n * interval '1 second' FROM generate_series(1, 25) AS n",
                (job["id"],),
            )
            newest_first = [
                str(row[0])
                for row in connection.execute(
                    "SELECT id FROM executions ORDER BY created_at DESC, id DESC"
                )
            ]
        seen, pages = _walk(client, JOB_EXECUTIONS, {"id": job["id"]}, 7)

    assert pages == 4
    assert seen == newest_first


def test_a_page_of_200_is_served_and_one_more_is_refused(database_url: str) -> None:
    """first: 200 returns 200 jobs; first: 201 is an error naming `first` and the
    limit, on the top-level connection and on a job's executions alike."""
    _insert_jobs(database_url, 205)
    with api_client(database_url) as client:
        data = graphql(client, JOBS_PAGE, {"first": 200})
        jobs = client.post(
            "/graphql", json={"query": JOBS_PAGE, "variables": {"first": 201}}
        ).json()
        job_id = data["jobs"]["edges"][0]["node"]["id"]
        executions = client.post(
            "/graphql",
            json={
                "query": JOB_EXECUTIONS,
                "variables": {"id": job_id, "first": 1000},
            },
        ).json()

    assert len(data["jobs"]["edges"]) == 200
    assert data["jobs"]["pageInfo"]["hasNextPage"] is True
    for body in (jobs, executions):
        assert body["errors"][0]["message"] == (
            "first: must be 0 to 200 (the page size limit)"
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_negative_page_size_is_a_readable_error(database_url: str) -> None:
    """first: -3 is refused, naming the argument, rather than answered empty."""
    with api_client(database_url) as client:
        body = client.post(
            "/graphql", json={"query": JOBS_PAGE, "variables": {"first": -3}}
        ).json()

    assert body["errors"][0]["message"] == (
        "first: must be 0 to 200 (the page size limit)"
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_cursor_that_is_not_ours_is_a_readable_error(database_url: str) -> None:
    """A made-up `after` gives an error naming the argument, not a crash."""
    with api_client(database_url, env="production") as client:
        body = client.post(
            "/graphql", json={"query": JOBS_PAGE, "variables": {"after": "bogus!"}}
        ).json()

    assert body["errors"][0]["message"] == "after: not a cursor from this API"
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("jobs", [3, 30])
def test_a_page_of_jobs_with_last_executions_takes_three_queries(
    database_url: str, jobs: int
) -> None:
    """Jobs, their last executions and those executions' attempts: 3 statements."""
    _insert_jobs(database_url, jobs)
    query = """{ jobs(first: 50) { edges { node {
        id lastExecution { id status attempts { number } } } } } }"""
    with psycopg.connect(database_url) as connection:
        job_ids = [str(row[0]) for row in connection.execute("SELECT id FROM jobs")]
    with api_client(database_url) as client:
        for job_id in job_ids:
            graphql(
                client,
                "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }",
                {"id": job_id},
            )
        statements: list[str] = []
        engine = client.app.state.tickwork.engine.sync_engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            data = graphql(client, query)
        finally:
            event.remove(engine, "before_cursor_execute", listener)

    edges = data["jobs"]["edges"]
    assert len(edges) == jobs
    assert all(edge["node"]["lastExecution"]["status"] == "PENDING" for edge in edges)
    assert len(statements) == 3, statements
