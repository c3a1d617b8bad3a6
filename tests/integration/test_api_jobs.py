"""Creating jobs of every kind, reading them back, and changing them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
from api_helpers import (
    JOB_FIELDS,
    JOB_RESULT,
    api_client,
    count_rows,
    create_job,
    db_now,
    graphql,
    interval_job,
)

UPDATE_JOB = f"""
mutation ($id: ID!, $input: UpdateJobInput!) {{
  updateJob(id: $id, input: $input) {{ {JOB_RESULT} }}
}}
"""

JOB = f"query ($id: ID!) {{ job(id: $id) {{ __typename {JOB_FIELDS} }} }}"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_an_interval_job_first_runs_now_and_reads_back(database_url: str) -> None:
    """An interval job is ACTIVE, anchored at creation, and reads back unchanged."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job(payload={"n": 1}, maxRetries=5))
        read = graphql(client, JOB, {"id": job["id"]})["job"]

    assert job["__typename"] == "Job", job
    assert read == job
    assert job["state"] == "ACTIVE"
    assert job["schedule"]["intervalSeconds"] == 60
    assert job["schedule"]["description"] == "Every 60 seconds"
    assert job["nextRunAt"] == job["schedule"]["startAt"]
    assert job["payload"] == {"n": 1}
    assert (job["maxRetries"], job["timeoutSeconds"]) == (5, 30.0)
    assert job["action"]["webhook"] == {
        "url": "https://hooks.example/tick",
        "headers": None,
        "verifyTls": True,
        "followRedirects": False,
    }


def test_a_cron_job_runs_next_at_its_next_cron_time_in_its_zone(
    database_url: str,
) -> None:
    """A daily 09:30 Berlin cron job's next run is the coming 09:30 in Berlin."""
    with api_client(database_url) as client:
        job = create_job(
            client,
            name="morning report",
            schedule={
                "cron": {"expression": "30 9 * * *", "timezone": "Europe/Berlin"}
            },
            action={"fetch": {"url": "https://data.example/report"}},
        )

    assert job["schedule"]["cron"] == {
        "expression": "30 9 * * *",
        "timezone": "Europe/Berlin",
    }
    assert job["action"] == {
        "webhook": None,
        "fetch": {"url": "https://data.example/report"},
    }
    next_run = _at(job["nextRunAt"])
    local = next_run.astimezone(_zone("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 30)
    assert timedelta(0) < next_run - db_now(database_url) <= timedelta(days=1)


def test_a_one_off_job_runs_at_its_time(database_url: str) -> None:
    """An `at` job's next run is exactly its instant."""
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    with api_client(database_url) as client:
        job = create_job(
            client,
            name="once",
            schedule={"at": at.isoformat()},
            action={"fetch": {}},
        )

    assert _at(job["schedule"]["at"]) == at
    assert _at(job["nextRunAt"]) == at
    assert job["action"]["fetch"] == {"url": None}


def test_a_schedule_that_has_ended_makes_a_completed_job(database_url: str) -> None:
    """A cron job whose endAt has passed is stored COMPLETED, with the reason."""
    with api_client(database_url) as client:
        job = create_job(
            client,
            name="too late",
            schedule={
                "cron": {"expression": "0 * * * *"},
                "startAt": "2001-01-01T00:00:00+00:00",
                "endAt": "2001-01-02T00:00:00+00:00",
            },
            action={"fetch": {}},
        )

    assert job["state"] == "COMPLETED"
    assert job["stateReason"] == "schedule has no future fire time"
    assert job["nextRunAt"] is None


def test_the_next_run_time_comes_from_the_database_clock(database_url: str) -> None:
    """With the database clock a day ahead, a new job's first run is a day ahead."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            f"ALTER DATABASE \"{name}\" SET tickwork.clock_offset = '1 day'"
        )

    with api_client(database_url) as client:
        job = create_job(client, **interval_job())

    ahead = _at(job["nextRunAt"]) - datetime.now(UTC)
    assert timedelta(hours=23) < ahead < timedelta(days=1, hours=1)
    assert _at(job["createdAt"]) > datetime.now(UTC) + timedelta(hours=23)


def test_creating_with_an_existing_key_updates_that_job(database_url: str) -> None:
    """A second createJob with the same key keeps one row, the same id, new fields."""
    with api_client(database_url) as client:
        first = create_job(client, **interval_job("v1", key="nightly"))
        second = create_job(
            client,
            name="v2",
            key="nightly",
            schedule={"intervalSeconds": 120},
            action={"fetch": {}},
        )

    assert second["id"] == first["id"]
    assert (second["name"], second["key"]) == ("v2", "nightly")
    assert second["schedule"]["intervalSeconds"] == 120
    assert second["action"]["fetch"] == {"url": None}
    assert count_rows(database_url, "jobs") == 1


def test_a_paused_job_stays_paused_when_its_key_is_applied_again(
    database_url: str,
) -> None:
    """Re-running a deploy script does not resume a job someone paused."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job(key="deploy"))
        graphql(
            client,
            "mutation ($id: ID!) { pauseJob(id: $id) { __typename } }",
            {"id": job["id"]},
        )
        again = create_job(client, **interval_job("renamed", key="deploy"))

    assert (again["state"], again["name"]) == ("PAUSED", "renamed")


def test_a_payload_webhook_url_makes_a_webhook_job(database_url: str) -> None:
    """Without an action, payload.webhook_url becomes the webhook's URL."""
    with api_client(database_url) as client:
        job = create_job(
            client,
            name="legacy",
            schedule={"intervalSeconds": 30},
            payload={"webhook_url": "https://legacy.example/hook", "x": 1},
        )
        callback = create_job(
            client,
            name="legacy callback",
            schedule={"intervalSeconds": 30},
            payload={"callback_url": "http://cb.example/done"},
        )

    assert job["action"]["webhook"]["url"] == "https://legacy.example/hook"
    assert job["payload"] == {"webhook_url": "https://legacy.example/hook", "x": 1}
    assert callback["action"]["webhook"]["url"] == "http://cb.example/done"


def test_the_test_job_fetches_the_built_in_quote_every_five_seconds(
    database_url: str,
) -> None:
    """createTestJob makes an active 5-second fetch job with no URL."""
    with api_client(database_url) as client:
        job = graphql(client, f"mutation {{ createTestJob {{ {JOB_RESULT} }} }}")

    job = job["createTestJob"]
    assert (job["name"], job["state"]) == ("Test job", "ACTIVE")
    assert job["schedule"]["intervalSeconds"] == 5
    assert job["action"] == {"webhook": None, "fetch": {"url": None}}


def test_updating_a_job_changes_only_the_fields_given(database_url: str) -> None:
    """updateJob with a name and schedule keeps the action and payload."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job(payload={"keep": True}))
        updated = graphql(
            client,
            UPDATE_JOB,
            {
                "id": job["id"],
                "input": {"name": "renamed", "schedule": {"intervalSeconds": 10}},
            },
        )["updateJob"]

    assert updated["name"] == "renamed"
    assert updated["schedule"]["intervalSeconds"] == 10
    assert updated["payload"] == {"keep": True}
    assert updated["action"] == job["action"]
    assert updated["nextRunAt"] == updated["schedule"]["startAt"]
    assert _at(updated["nextRunAt"]) > _at(job["nextRunAt"])


def test_updating_with_a_bad_field_changes_nothing(database_url: str) -> None:
    """An updateJob with one bad field leaves the good fields unapplied too."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        result = graphql(
            client,
            UPDATE_JOB,
            {"id": job["id"], "input": {"name": "new", "maxRetries": -1}},
        )["updateJob"]
        read = graphql(client, JOB, {"id": job["id"]})["job"]

    assert result["__typename"] == "InvalidInput"
    assert [e["field"] for e in result["errors"]] == ["maxRetries"]
    assert read["name"] == job["name"]


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_concurrent_creates_with_one_key_make_one_job(database_url: str) -> None:
    """Eight createJob calls racing on one key all return the same job id."""
    with api_client(database_url) as client, ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda n: create_job(client, **interval_job(f"racer {n}", key="race")),
                range(8),
            )
        )

    assert len({result["id"] for result in results}) == 1
    assert count_rows(database_url, "jobs") == 1
