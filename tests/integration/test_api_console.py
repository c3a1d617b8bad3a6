"""What the web console reads: filtered job pages, recent-run strips, daemons."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from api_helpers import api_client, create_job, graphql, interval_job
from sqlalchemy import event

FILTERED = """
query ($name: String, $state: JobState, $first: Int, $after: String) {
  jobs(name: $name, state: $state, first: $first, after: $after) {
    edges { node { name state } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

STRIPS = """{ jobs(first: 50) { edges { node {
  id name recentRuns(count: 4) { id status durationMs } } } } }"""


def _insert_jobs(database_url: str, names: list[tuple[str, str]]) -> None:
    """Jobs with these (name, state) pairs, copying one real job's definition."""
    with api_client(database_url) as client:
        create_job(client, **interval_job(name="template"))
    with psycopg.connect(database_url) as connection:
        for name, state in names:
            connection.execute(
                "INSERT INTO jobs (id, name, schedule, action, max_retries,"
                " timeout_seconds, state)"
                " SELECT %s, %s, schedule, action, 3, 30, %s FROM jobs"
                " WHERE name = 'template'",
                (uuid.uuid4(), name, state),
            )


def _names(data: dict) -> list[str]:
    return sorted(edge["node"]["name"] for edge in data["jobs"]["edges"])


def test_jobs_filter_by_name_ignoring_case_and_by_state(database_url: str) -> None:
    """name matches a part of the name in any case; state narrows further."""
    _insert_jobs(
        database_url,
        [
            ("Nightly report", "ACTIVE"),
            ("nightly backup", "PAUSED"),
            ("hourly ping", "ACTIVE"),
        ],
    )
    with api_client(database_url) as client:
        by_name = graphql(client, FILTERED, {"name": "NIGHTLY"})
        paused = graphql(client, FILTERED, {"state": "PAUSED"})
        both = graphql(client, FILTERED, {"name": "nightly", "state": "ACTIVE"})
        everything = graphql(client, FILTERED, {})

    assert _names(by_name) == ["Nightly report", "nightly backup"]
    assert _names(paused) == ["nightly backup"]
    assert _names(both) == ["Nightly report"]
    assert len(everything["jobs"]["edges"]) == 4  # the template too


def test_name_filter_takes_percent_and_underscore_literally(database_url: str) -> None:
    """'50%' finds '50% off' only, not every name; '_' is no wildcard either."""
    _insert_jobs(database_url, [("50% off", "ACTIVE"), ("500 errors", "ACTIVE")])
    with api_client(database_url) as client:
        percent = graphql(client, FILTERED, {"name": "50%"})
        underscore = graphql(client, FILTERED, {"name": "_"})

    assert _names(percent) == ["50% off"]
    assert _names(underscore) == []


def test_filtered_pages_walk_every_match_once(database_url: str) -> None:
    """25 matching jobs among 50, 10 a page: 3 pages holding exactly the matches."""
    _insert_jobs(
        database_url,
        [(f"{'alpha' if n % 2 else 'beta'} {n}", "ACTIVE") for n in range(50)],
    )
    seen: list[str] = []
    after = None
    with api_client(database_url) as client:
        for _ in range(5):
            data = graphql(
                client, FILTERED, {"name": "alpha", "first": 10, "after": after}
            )
            seen += [edge["node"]["name"] for edge in data["jobs"]["edges"]]
            if not data["jobs"]["pageInfo"]["hasNextPage"]:
                break
            after = data["jobs"]["pageInfo"]["endCursor"]

    assert len(seen) == len(set(seen)) == 25
    assert all(name.startswith("alpha") for name in seen)


@pytest.mark.parametrize("jobs", [3, 30])
def test_recent_runs_of_a_page_take_one_query_for_every_job(
    database_url: str, jobs: int
) -> None:
    """A page of jobs with their last 4 runs is 2 statements, however many jobs."""
    _insert_jobs(database_url, [(f"job {n}", "ACTIVE") for n in range(jobs - 1)])
    with psycopg.connect(database_url) as connection:
        # Six runs per job, a second apart; the strip shows the newest four.
        connection.execute(
            "INSERT INTO executions (id, job_id, trigger, status, run_at, attempt,"
            " failures, fence, created_at, started_at, finished_at)"
            " SELECT gen_random_uuid(), jobs.id, 'MANUAL',"
            " CASE WHEN n % 2 = 0 THEN 'SUCCEEDED' ELSE 'FAILED' END,"
            " now(), 1, 0, 0, now() - n * interval '1 second',"
            " now() - n * interval '1 second',"
            " now() - n * interval '1 second' + n * interval '10 milliseconds'"
            " FROM jobs, generate_series(1, 6) AS n"
        )
    with api_client(database_url) as client:
        statements: list[str] = []
        engine = client.app.state.tickwork.engine.sync_engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            data = graphql(client, STRIPS)
        finally:
            event.remove(engine, "before_cursor_execute", listener)

    edges = data["jobs"]["edges"]
    assert len(edges) == jobs
    for edge in edges:
        runs = edge["node"]["recentRuns"]
        # Newest first: n = 1, 2, 3, 4.
        assert [run["status"] for run in runs] == [
            "FAILED",
            "SUCCEEDED",
            "FAILED",
            "SUCCEEDED",
        ]
        assert [run["durationMs"] for run in runs] == [10, 20, 30, 40]
    assert len(statements) == 2, statements


def test_recent_runs_count_is_bounded(database_url: str) -> None:
    """count 0 gives none without a query; a huge count is capped at 50."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        for _ in range(3):
            graphql(
                client,
                "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }",
                {"id": job["id"]},
            )
        data = graphql(
            client,
            "query ($id: ID!) { job(id: $id) { none: recentRuns(count: 0) { id }"
            " many: recentRuns(count: 100000) { id } } }",
            {"id": job["id"]},
        )

    assert data["job"]["none"] == []
    assert len(data["job"]["many"]) == 3


def test_daemons_report_their_runs_in_flight(database_url: str) -> None:
    """Each daemon counts the RUNNING executions it holds, and its capacity."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        busy, idle = uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(database_url) as connection:
            for daemon_id in (busy, idle):
                connection.execute(
                    "INSERT INTO daemons (id, hostname, pid, concurrency, state)"
                    " VALUES (%s, 'worker', 1, 64, 'RUNNING')",
                    (daemon_id,),
                )
            # Two runs held by the busy daemon, one waiting for nobody.
            for daemon_id, status in (
                (busy, "RUNNING"),
                (busy, "RUNNING"),
                (None, "PENDING"),
            ):
                connection.execute(
                    "INSERT INTO executions (id, job_id, trigger, status, run_at,"
                    " attempt, failures, fence, daemon_id)"
                    " VALUES (gen_random_uuid(), %s, 'MANUAL', %s, now(), 1, 0, 1,"
                    " %s)",
                    (job["id"], status, daemon_id),
                )
        data = graphql(client, "{ daemons { id state concurrency inFlight } }")

    counts = {row["id"]: row["inFlight"] for row in data["daemons"]}
    assert counts == {str(busy): 2, str(idle): 0}
    assert {row["concurrency"] for row in data["daemons"]} == {64}
