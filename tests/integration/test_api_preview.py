"""Fire times: previewSchedule, Job.nextRuns, and how resuming, updating and
triggering a job move (or keep) its next run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import psycopg
import pytest
from api_helpers import (
    JOB_RESULT,
    api_client,
    count_rows,
    create_job,
    db_now,
    graphql,
    interval_job,
)
from fastapi.testclient import TestClient

PREVIEW = """
query ($schedule: ScheduleInput!, $count: Int, $after: DateTime) {
  previewSchedule(schedule: $schedule, count: $count, after: $after) {
    __typename
    ... on SchedulePreview { description fireTimes }
    ... on InvalidInput { message errors { field message } }
  }
}
"""
NEXT_RUNS = """
query ($id: ID!, $count: Int) {
  job(id: $id) { state nextRunAt nextRuns(count: $count) }
}
"""
PAUSE = "mutation ($id: ID!) { pauseJob(id: $id) { __typename } }"
RESUME = f"mutation ($id: ID!) {{ resumeJob(id: $id) {{ {JOB_RESULT} }} }}"
UPDATE = f"""
mutation ($id: ID!, $input: UpdateJobInput!) {{
  updateJob(id: $id, input: $input) {{ {JOB_RESULT} }}
}}
"""
TRIGGER = """
mutation ($id: ID!) {
  triggerJob(id: $id) { ... on Execution { id status trigger scheduledFor } }
}
"""
JOB = "query ($id: ID!) { job(id: $id) { nextRunAt } }"

BERLIN = {"cron": {"expression": "30 2 * * *", "timezone": "Europe/Berlin"}}
# Anchors of interval jobs whose grid lies in the past.
ANCHOR = "2001-01-01T00:00:07+00:00"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _preview(client: TestClient, schedule: dict[str, Any], **args: Any) -> Any:
    variables = {"schedule": schedule, **args}
    return graphql(client, PREVIEW, variables)["previewSchedule"]


def _next_runs(client: TestClient, job_id: str, count: int | None = 3) -> Any:
    return graphql(client, NEXT_RUNS, {"id": job_id, "count": count})["job"]


def _set(database_url: str, sql: str, job_id: str) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute(sql, (job_id,))


def test_a_berlin_preview_crosses_the_spring_forward_night(
    database_url: str,
) -> None:
    """02:30 Berlin runs at 03:00 CEST on the night 02:30 does not exist."""
    with api_client(database_url) as client:
        preview = _preview(client, BERLIN, count=5, after="2027-03-26T08:00:00Z")

    assert preview == {
        "__typename": "SchedulePreview",
        "description": "At 02:30 every day (Europe/Berlin)",
        "fireTimes": [
            "2027-03-27T01:30:00+00:00",
            "2027-03-28T01:00:00+00:00",
            "2027-03-29T00:30:00+00:00",
            "2027-03-30T00:30:00+00:00",
            "2027-03-31T00:30:00+00:00",
        ],
    }
    assert count_rows(database_url, "jobs") == 0


def test_a_berlin_preview_runs_once_on_the_fall_back_night(
    database_url: str,
) -> None:
    """02:30 Berlin, which happens twice on 31 October 2027, runs once (CEST)."""
    with api_client(database_url) as client:
        preview = _preview(client, BERLIN, count=3, after="2027-10-30T00:00:00Z")

    assert preview["fireTimes"] == [
        "2027-10-30T00:30:00+00:00",
        "2027-10-31T00:30:00+00:00",
        "2027-11-01T01:30:00+00:00",
    ]


def test_an_interval_preview_counts_from_after_or_its_start(
    database_url: str,
) -> None:
    """Without startAt an interval is anchored at `after`; with it, on its grid."""
    after = "2030-01-01T12:00:00Z"
    with api_client(database_url) as client:
        floating = _preview(client, {"intervalSeconds": 90}, count=3, after=after)
        anchored = _preview(
            client,
            {"intervalSeconds": 3600, "startAt": "2030-01-01T00:20:00Z"},
            count=2,
            after=after,
        )

    assert floating["description"] == "Every 90 seconds"
    assert floating["fireTimes"] == [
        "2030-01-01T12:01:30+00:00",
        "2030-01-01T12:03:00+00:00",
        "2030-01-01T12:04:30+00:00",
    ]
    assert anchored["fireTimes"] == [
        "2030-01-01T12:20:00+00:00",
        "2030-01-01T13:20:00+00:00",
    ]


def test_a_preview_without_after_starts_at_the_database_clock(
    database_url: str,
) -> None:
    """With the database clock a day ahead, the first fire time is a day ahead."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            f"ALTER DATABASE \"{name}\" SET tickwork.clock_offset = '1 day'"
        )
    with api_client(database_url) as client:
        before = db_now(database_url)
        preview = _preview(client, {"intervalSeconds": 60}, count=1)
        after = db_now(database_url)

    (first,) = [_at(value) for value in preview["fireTimes"]]
    assert before + timedelta(seconds=60) <= first <= after + timedelta(seconds=60)


def test_a_preview_count_is_clamped_to_1_to_100(database_url: str) -> None:
    """count 0 lists one fire time, count 500 lists a hundred."""
    with api_client(database_url) as client:
        one = _preview(client, {"intervalSeconds": 5}, count=0)
        hundred = _preview(client, {"intervalSeconds": 5}, count=500)

    assert len(one["fireTimes"]) == 1
    assert len(hundred["fireTimes"]) == 100


def test_a_one_off_in_the_past_previews_no_fire_times(database_url: str) -> None:
    """An `at` before `after` has nothing left to run."""
    with api_client(database_url) as client:
        preview = _preview(
            client, {"at": "2027-01-01T00:00:00Z"}, after="2027-06-01T00:00:00Z"
        )

    assert preview["fireTimes"] == []


@pytest.mark.parametrize(
    ("schedule", "after", "field"),
    [
        ({"cron": {"expression": "0 0 30 2 *"}}, None, "schedule.cron.expression"),
        (
            {"cron": {"expression": "0 9 * * *", "timezone": "Mars/Olympus"}},
            None,
            "schedule.cron.timezone",
        ),
        ({"intervalSeconds": 0}, None, "schedule.intervalSeconds"),
        ({"intervalSeconds": 5}, "2030-01-01T00:00:00", "after"),
    ],
    ids=["30 February", "unknown zone", "zero interval", "after without offset"],
)
def test_a_bad_preview_names_the_field_as_createjob_does(
    database_url: str, schedule: dict[str, Any], after: str | None, field: str
) -> None:
    """A schedule createJob would reject is InvalidInput under the same name."""
    with api_client(database_url) as client:
        preview = _preview(client, schedule, after=after)

    assert preview["__typename"] == "InvalidInput", preview
    assert [e["field"] for e in preview["errors"]] == [field]


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"at": "0001-01-01T00:00:00+14:00"}, "schedule.at"),
        (
            {"intervalSeconds": 60, "startAt": "9999-12-31T00:00:00Z"},
            "schedule.startAt",
        ),
        ({"intervalSeconds": 60, "endAt": "9500-01-01T00:00:00Z"}, "schedule.endAt"),
        ({"at": "1969-12-31T23:59:59Z"}, "schedule.at"),
    ],
    ids=["year 0 in UTC", "start in 9999", "end in 9500", "before 1970"],
)
def test_a_schedule_time_outside_the_supported_range_is_invalid_input(
    database_url: str, schedule: dict[str, Any], field: str
) -> None:
    """In production, createJob with a time Python cannot even convert to UTC,
    or one whose fire times would run off the end of the calendar, is
    InvalidInput naming the field and the range."""
    with api_client(database_url, env="production") as client:
        result = create_job(client, **interval_job(schedule=schedule))

    assert result["__typename"] == "InvalidInput", result
    assert result["errors"] == [
        {"field": field, "message": "must be between 1970-01-01 and 9000-01-01 UTC"}
    ]
    assert count_rows(database_url, "jobs") == 0


def test_a_preview_after_the_supported_range_is_invalid_input(
    database_url: str,
) -> None:
    """In production, previewing a daily interval after 9999-12-30 names
    `after`, instead of overflowing on the day after."""
    with api_client(database_url, env="production") as client:
        preview = _preview(
            client, {"intervalSeconds": 86400}, after="9999-12-30T00:00:00Z"
        )

    assert preview["__typename"] == "InvalidInput", preview
    assert [e["field"] for e in preview["errors"]] == ["after"]


def test_fire_times_stop_at_the_end_of_the_supported_range(database_url: str) -> None:
    """An interval of 2**31 - 1 seconds (68 years) starting in 8990 fires once
    before 9000: nextRuns and the preview list that one time, not five."""
    schedule = {"intervalSeconds": 2**31 - 1, "startAt": "8990-01-01T00:00:00Z"}
    with api_client(database_url, env="production") as client:
        job = create_job(client, **interval_job(schedule=schedule))
        runs = _next_runs(client, job["id"], count=5)
        preview = _preview(client, schedule, count=5, after="8989-01-01T00:00:00Z")

    assert runs["nextRuns"] == ["8990-01-01T00:00:00+00:00"]
    assert preview["fireTimes"] == ["8990-01-01T00:00:00+00:00"]


def test_a_job_stored_past_the_supported_range_still_reads(database_url: str) -> None:
    """A job saved before schedule times were bounded, starting in 9999, shows
    its next run and no later one, instead of the whole job reading as null."""
    with api_client(database_url, env="production") as client:
        job = create_job(client, **interval_job())
        _set(
            database_url,
            "UPDATE jobs SET next_run_at = '9999-12-31T00:00:00Z', schedule ="
            " jsonb_set(schedule, '{start_at}', '\"9999-12-31T00:00:00Z\"')"
            " WHERE id = %s",
            job["id"],
        )
        runs = _next_runs(client, job["id"], count=5)

    assert runs["nextRuns"] == ["9999-12-31T00:00:00+00:00"]


def test_an_active_jobs_next_runs_start_at_its_next_run(database_url: str) -> None:
    """nextRuns of an active interval job is nextRunAt, then a step apart."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        read = _next_runs(client, job["id"], count=3)
        default = _next_runs(client, job["id"], count=None)

    first = _at(read["nextRunAt"])
    assert [_at(t) for t in read["nextRuns"]] == [
        first + timedelta(seconds=60 * k) for k in range(3)
    ]
    assert len(default["nextRuns"]) == 5


def test_a_cron_jobs_next_runs_follow_its_zone(database_url: str) -> None:
    """nextRuns of a Berlin 02:30 job are each 02:30 Berlin time."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job(schedule=BERLIN))
        read = _next_runs(client, job["id"], count=4)

    local = [_at(t).astimezone(ZoneInfo("Europe/Berlin")) for t in read["nextRuns"]]
    assert read["nextRuns"][0] == read["nextRunAt"]
    assert {(t.hour, t.minute) for t in local} <= {(2, 30), (3, 0)}
    assert len({t.date() for t in local}) == 4


def test_a_paused_jobs_next_runs_are_what_resuming_would_give(
    database_url: str,
) -> None:
    """A job paused long ago lists from the first grid time after now, and
    resumeJob then sets exactly that next run."""
    spec = interval_job(schedule={"intervalSeconds": 86_400, "startAt": ANCHOR})
    with api_client(database_url) as client:
        job = create_job(client, **spec)
        graphql(client, PAUSE, {"id": job["id"]})
        _set(database_url, "UPDATE jobs SET next_run_at = %s", ANCHOR)
        now = db_now(database_url)
        paused = _next_runs(client, job["id"], count=2)
        resumed = graphql(client, RESUME, {"id": job["id"]})["resumeJob"]

    first, second = (_at(t) for t in paused["nextRuns"])
    assert paused["state"] == "PAUSED"
    assert now < first <= now + timedelta(days=1)
    assert (first - _at(ANCHOR)) % timedelta(days=1) == timedelta(0)
    assert second == first + timedelta(days=1)
    assert resumed["nextRunAt"] == paused["nextRuns"][0]


def test_a_completed_job_has_no_next_runs(database_url: str) -> None:
    """A job whose schedule has ended lists no fire times."""
    spec = interval_job(
        schedule={
            "cron": {"expression": "0 * * * *"},
            "startAt": "2001-01-01T00:00:00+00:00",
            "endAt": "2001-01-02T00:00:00+00:00",
        }
    )
    with api_client(database_url) as client:
        job = create_job(client, **spec)
        read = _next_runs(client, job["id"])

    assert (read["state"], read["nextRuns"]) == ("COMPLETED", [])


def test_resuming_never_catches_up_the_paused_period(database_url: str) -> None:
    """A 10-minute job paused for years resumes at its first grid time after now,
    with no execution for the fire times it slept through."""
    spec = interval_job(schedule={"intervalSeconds": 600, "startAt": ANCHOR})
    with api_client(database_url) as client:
        job = create_job(client, **spec)
        graphql(client, PAUSE, {"id": job["id"]})
        _set(database_url, "UPDATE jobs SET next_run_at = %s", ANCHOR)
        before = db_now(database_url)
        resumed = graphql(client, RESUME, {"id": job["id"]})["resumeJob"]
        after = db_now(database_url)

    next_run = _at(resumed["nextRunAt"])
    assert resumed["state"] == "ACTIVE"
    assert before < next_run <= after + timedelta(seconds=600)
    assert (next_run - _at(ANCHOR)) % timedelta(seconds=600) == timedelta(0)
    assert count_rows(database_url, "executions") == 0


def test_a_one_off_whose_time_passed_while_paused_completes_on_resume(
    database_url: str,
) -> None:
    """Resuming a one-off after its instant does not run it late: it completes."""
    spec = interval_job(schedule={"at": "2001-01-01T00:00:00+00:00"})
    with api_client(database_url) as client:
        job = create_job(client, **spec)
        graphql(client, PAUSE, {"id": job["id"]})
        resumed = graphql(client, RESUME, {"id": job["id"]})["resumeJob"]

    assert resumed["state"] == "COMPLETED"
    assert resumed["nextRunAt"] is None
    assert resumed["stateReason"] == "schedule has no future fire time"


def test_a_new_schedule_moves_the_next_run_at_once_and_wakes_the_daemons(
    database_url: str,
) -> None:
    """updateJob from a yearly cron to an interval without startAt re-anchors the
    interval at the edit, runs it from there, and NOTIFYs the daemons."""
    spec = interval_job(schedule={"cron": {"expression": "@yearly"}})
    with api_client(database_url) as client:
        job = create_job(client, **spec)
        with psycopg.connect(database_url, autocommit=True) as listener:
            listener.execute("LISTEN tickwork_wakeup")
            before = db_now(database_url)
            variables = {
                "id": job["id"],
                "input": {"schedule": {"intervalSeconds": 30}},
            }
            updated = graphql(client, UPDATE, variables)["updateJob"]
            after = db_now(database_url)
            notices = list(listener.notifies(timeout=5, stop_after=1))
        runs = _next_runs(client, job["id"], count=2)

    next_run = _at(updated["nextRunAt"])
    assert updated["schedule"]["startAt"] == updated["nextRunAt"]
    assert before <= next_run <= after
    assert [_at(t) for t in runs["nextRuns"]] == [
        next_run,
        next_run + timedelta(seconds=30),
    ]
    assert [n.channel for n in notices] == ["tickwork_wakeup"]


def test_a_new_cron_schedule_runs_next_at_its_next_cron_time(
    database_url: str,
) -> None:
    """updateJob from an interval to an hourly cron sets the coming full hour."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        variables = {
            "id": job["id"],
            "input": {"schedule": {"cron": {"expression": "@hourly"}}},
        }
        updated = graphql(client, UPDATE, variables)["updateJob"]
        now = db_now(database_url)

    next_run = _at(updated["nextRunAt"])
    assert (next_run.minute, next_run.second) == (0, 0)
    assert now < next_run <= now + timedelta(hours=1)


def test_triggering_runs_manually_and_keeps_the_next_run(database_url: str) -> None:
    """triggerJob queues a MANUAL execution; the job's nextRunAt does not move."""
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        execution = graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
        read = graphql(client, JOB, {"id": job["id"]})["job"]

    assert (execution["status"], execution["trigger"]) == ("PENDING", "MANUAL")
    assert execution["scheduledFor"] is None
    assert read["nextRunAt"] == job["nextRunAt"]
