"""When jobs fire: the pure schedule functions and their validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import InvalidInputError
from shared.schedule import (
    build_schedule,
    first_fire_time,
    next_fire_time,
)

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def fields(exc: pytest.ExceptionInfo[InvalidInputError]) -> dict[str, str]:
    return {e.field: e.message for e in exc.value.errors}


def test_an_interval_fires_at_its_anchor_then_every_interval() -> None:
    """Fire times are anchor + k * interval, starting at the anchor itself."""
    schedule = build_schedule(interval_seconds=5, now=NOW)
    first = first_fire_time(schedule, NOW)
    assert first == NOW
    assert next_fire_time(schedule, first) == NOW + timedelta(seconds=5)
    # However late a run finished, the next time stays on the grid.
    late = NOW + timedelta(seconds=12, milliseconds=700)
    assert next_fire_time(schedule, late) == NOW + timedelta(seconds=15)


def test_next_fire_time_is_strictly_after_the_reference() -> None:
    """A reference that sits exactly on a fire time gives the following one."""
    schedule = build_schedule(interval_seconds=60, now=NOW)
    assert next_fire_time(schedule, NOW + timedelta(minutes=2)) == NOW + timedelta(
        minutes=3
    )
    cron = build_schedule(cron_expression="0 * * * *", now=NOW)
    assert next_fire_time(cron, NOW) == NOW + timedelta(hours=1)


def test_a_cron_expression_is_evaluated_in_its_time_zone() -> None:
    """`0 3 * * *` in Berlin is 02:00 UTC in winter."""
    schedule = build_schedule(
        cron_expression="0 3 * * *", timezone="Europe/Berlin", now=NOW
    )
    assert next_fire_time(schedule, NOW) == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def test_a_daily_job_fires_once_on_the_fall_back_night() -> None:
    """02:30 happens twice in Berlin on 2026-10-25; the job fires on the first."""
    schedule = build_schedule(
        cron_expression="30 2 * * *", timezone="Europe/Berlin", now=NOW
    )
    start = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    first = next_fire_time(schedule, start)
    second = next_fire_time(schedule, first)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert second == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # next day, CET


def test_a_one_off_in_the_past_fires_at_once_and_never_again() -> None:
    """An `at` schedule whose time passed is due immediately, and has no next."""
    at = NOW - timedelta(hours=1)
    schedule = build_schedule(at=at, now=NOW)
    assert first_fire_time(schedule, NOW) == at
    assert next_fire_time(schedule, at) is None


def test_end_at_stops_a_schedule() -> None:
    """No fire time is given past endAt."""
    schedule = build_schedule(
        interval_seconds=10, end_at=NOW + timedelta(seconds=25), now=NOW
    )
    assert next_fire_time(schedule, NOW + timedelta(seconds=15)) == NOW + timedelta(
        seconds=20
    )
    assert next_fire_time(schedule, NOW + timedelta(seconds=20)) is None


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"interval_seconds": 0}, "schedule.intervalSeconds", "at least 1"),
        (
            {"cron_expression": "0 3 * * *", "timezone": "Mars/Olympus"},
            "schedule.cron.timezone",
            "unknown time zone",
        ),
        ({"cron_expression": "61 * * * *"}, "schedule.cron.expression", "range"),
        ({"cron_expression": "@reboot"}, "schedule.cron.expression", "cannot"),
        ({"cron_expression": ""}, "schedule.cron.expression", "empty"),
        ({}, "schedule", "exactly one"),
        (
            {"interval_seconds": 5, "cron_expression": "* * * * *"},
            "schedule",
            "exactly one",
        ),
    ],
)
def test_bad_schedules_are_rejected_naming_the_field(
    kwargs: dict[str, object], field: str, words: str
) -> None:
    """Each mistake names the input field and says what is wrong."""
    with pytest.raises(InvalidInputError) as exc:
        build_schedule(now=NOW, **kwargs)
    assert words in fields(exc)[field]


def test_a_bad_expression_and_a_bad_zone_are_both_named() -> None:
    """One answer lists every mistake, not only the first found."""
    with pytest.raises(InvalidInputError) as exc:
        build_schedule(cron_expression="0 0 30 2 *", timezone="Mars/X", now=NOW)
    assert set(fields(exc)) == {"schedule.cron.expression", "schedule.cron.timezone"}


def test_times_without_an_offset_are_rejected() -> None:
    """A naive `at` is ambiguous, so it is refused rather than guessed."""
    with pytest.raises(InvalidInputError) as exc:
        build_schedule(at=datetime(2027, 1, 1, 9, 0), now=NOW)
    assert "UTC offset" in fields(exc)["schedule.at"]


def test_schedules_describe_themselves_in_plain_words() -> None:
    """Descriptions are for people: intervals in seconds, cron explained."""
    assert build_schedule(interval_seconds=5, now=NOW).describe() == "Every 5 seconds"
    daily = build_schedule(cron_expression="0 3 * * *", timezone="UTC", now=NOW)
    assert daily.describe() == "At 03:00 every day (UTC)"


@pytest.mark.parametrize(
    "given",
    [
        {"at": datetime.fromisoformat("0001-01-01T00:00:00+14:00")},
        {"at": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)},
        {"interval_seconds": 60, "start_at": datetime(9000, 1, 2, tzinfo=UTC)},
        {"cron_expression": "0 0 * * *", "end_at": datetime(9999, 1, 1, tzinfo=UTC)},
    ],
    ids=["year 0 in UTC", "before 1970", "start after 9000", "end after 9000"],
)
def test_schedule_times_outside_1970_to_9000_are_refused(
    given: dict[str, Any],
) -> None:
    """Times are checked before any conversion to UTC, which could overflow."""
    with pytest.raises(InvalidInputError) as exc:
        build_schedule(now=NOW, **given)
    assert list(fields(exc).values()) == [
        "must be between 1970-01-01 and 9000-01-01 UTC"
    ]


def test_fire_times_end_at_9000_instead_of_overflowing() -> None:
    """An interval whose next step lands past 9000, or past Python's year 9999,
    has no next fire time; so has one stored before times were bounded."""
    start = datetime(8990, 1, 1, tzinfo=UTC)
    long = build_schedule(interval_seconds=2**31 - 1, start_at=start, now=NOW)
    assert next_fire_time(long, start - timedelta(seconds=1)) == start
    assert next_fire_time(long, start) is None

    stored = long.model_copy(update={"start_at": datetime(9999, 12, 31, tzinfo=UTC)})
    assert next_fire_time(stored, datetime(9999, 12, 31, tzinfo=UTC)) is None
    cron = build_schedule(cron_expression="0 0 * * *", now=NOW)
    assert next_fire_time(cron, datetime(8999, 12, 31, 12, tzinfo=UTC)) == datetime(
        9000, 1, 1, tzinfo=UTC
    )
    assert next_fire_time(cron, datetime(9000, 1, 1, tzinfo=UTC)) is None
