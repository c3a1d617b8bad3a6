"""Cron schedules across daylight-saving changes, checked against a brute-force oracle.

The property tests draw an expression, a zone and one of its clock changes in
2026-2030, then compare every fire time in the four days around it with
``tests.support.cron_oracle``, which encodes the README's policy independently.
The example tests pin the headline cases with hand-computed answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.schedule import Schedule, build_schedule, next_fire_time
from tests.support import cron_oracle

LORD_HOWE = "Australia/Lord_Howe"  # moves its clocks by 30 minutes
WHOLE_HOUR_ZONES = (
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",  # no daylight-saving time at all
)
ZONES = (*WHOLE_HOUR_ZONES, LORD_HOWE)
WINDOW = timedelta(hours=48)
REPO = Path(__file__).resolve().parents[2]

PROPERTY = settings(derandomize=True, max_examples=40, deadline=None, database=None)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """An expression in a zone, and the window (after, until] to compare over."""

    expression: str
    zone: str
    after: datetime
    until: datetime

    def schedule(self) -> Schedule:
        return build_schedule(
            cron_expression=self.expression, timezone=self.zone, now=self.after
        )

    def oracle(self) -> list[datetime]:
        return cron_oracle.fire_times(
            self.expression, ZoneInfo(self.zone), self.after, self.until
        )


def chain(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Fire times from chaining next_fire_time, each checked to be strictly after."""
    fires: list[datetime] = []
    current = after
    while (fire := next_fire_time(schedule, current)) is not None:
        assert fire > current, f"{fire} is not after {current}"
        if fire > until:
            break
        fires.append(fire)
        current = fire
    return fires


def fires(
    expression: str, zone: str, after: datetime, until: datetime
) -> list[datetime]:
    """The scheduler's fire times in (after, until], after the oracle agrees."""
    case = Case(expression, zone, after, until)
    found = chain(case.schedule(), after, until)
    assert case.oracle() == found, "the oracle disagrees with a headline case"
    return found


@cache
def clock_changes(zone_name: str) -> tuple[datetime, ...]:
    """Instants in 2026-2030 where the zone's UTC offset changes.

    A zone without daylight-saving time gets New Year and midsummer instead, so
    that it still has somewhere to be tested.
    """
    zone = ZoneInfo(zone_name)
    changes = []
    day = utc(2026, 1, 1)
    while day.year < 2031:
        next_day = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != next_day.astimezone(zone).utcoffset():
            minute = day
            offset = day.astimezone(zone).utcoffset()
            while minute.astimezone(zone).utcoffset() == offset:
                minute += cron_oracle.MINUTE
            changes.append(minute)
        day = next_day

    if changes:
        return tuple(changes)
    return tuple(utc(year, month, 1) for year in range(2026, 2031) for month in (1, 7))


minute_values = st.sampled_from([0, 15, 30, 45, 59]) | st.integers(0, 59)
steps = st.sampled_from([2, 3, 5, 10, 15, 20, 30])


def _listed(values: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.lists(values, min_size=2, max_size=3, unique=True).map(
        lambda items: ",".join(str(item) for item in sorted(items))
    )


def _ranged(values: st.SearchStrategy[int], width: int) -> st.SearchStrategy[str]:
    return st.tuples(values, st.integers(0, width)).map(
        lambda pair: f"{pair[0]}-{min(pair[0] + pair[1], 23)}"
    )


fixed_minutes = st.one_of(
    minute_values.map(str),
    _listed(minute_values),
    st.tuples(st.integers(0, 45), st.integers(0, 14)).map(
        lambda pair: f"{pair[0]}-{pair[0] + pair[1]}"
    ),
    st.tuples(st.integers(0, 30), st.integers(10, 29), steps).map(
        lambda t: f"{t[0]}-{t[0] + t[1]}/{t[2]}"
    ),
)
wildcard_minutes = st.sampled_from(["*/5", "*/7", "*/15", "*/20", "*/30", "*/45"])
wildcard_hours = st.sampled_from(["*", "*/2", "*/3", "*/5"])


def _fixed_hours(near: list[int]) -> st.SearchStrategy[str]:
    """An hour field without `*`, mostly about the hours ``near`` a clock change."""
    hours = st.sampled_from(near) | st.integers(0, 23)
    return st.one_of(
        hours.map(str),
        _listed(hours),
        _ranged(hours, 3),
        st.tuples(hours, st.sampled_from([2, 3])).map(
            lambda pair: f"{pair[0]}-{min(pair[0] + 4, 23)}/{pair[1]}"
        ),
    )


def _times(fixed_time: bool, near: list[int]) -> st.SearchStrategy[tuple[str, str]]:
    """Minute and hour fields, both fixed or at least one starting with `*`."""
    fixed_hours = _fixed_hours(near)
    if fixed_time:
        return st.tuples(fixed_minutes, fixed_hours)
    return st.one_of(
        st.tuples(wildcard_minutes, wildcard_hours | fixed_hours),
        # Every minute, so only in a few hours, to keep the chains short.
        st.tuples(st.just("*"), fixed_hours),
        st.tuples(fixed_minutes, wildcard_hours),
    )


def _day_fields(day: date) -> st.SearchStrategy[tuple[str, str, str]]:
    """Day of month, month and day of week, mostly `*`, else about ``day``."""
    weekday = (day.weekday() + 1) % 7
    return st.tuples(
        st.sampled_from(["*"] * 8 + [str(day.day), f"1-{day.day}", "*/2", "1,15"]),
        st.sampled_from(["*"] * 8 + [str(day.month), f"1-{day.month}"]),
        st.sampled_from(
            ["*"] * 8 + [str(weekday), str((weekday + 1) % 7), "7", "1-5", "*/2"]
        ),
    )


@st.composite
def cron_cases(
    draw: st.DrawFn, fixed_time: bool, zones: tuple[str, ...] = ZONES
) -> Case:
    """An expression in a zone, and the four days around one of its clock changes."""
    zone = draw(st.sampled_from(zones))
    change = draw(st.sampled_from(clock_changes(zone)))
    after = change - WINDOW + timedelta(minutes=draw(st.integers(0, 59)))

    local = ZoneInfo(zone)
    before_change = (change - cron_oracle.MINUTE).astimezone(local)
    # The wall-clock hours that the change skips or repeats.
    walls = sorted(
        [
            before_change.replace(tzinfo=None),
            change.astimezone(local).replace(tzinfo=None),
        ]
    )
    near = sorted(
        {(walls[0] + cron_oracle.MINUTE).hour, (walls[1] - cron_oracle.MINUTE).hour}
    )
    minute, hour = draw(_times(fixed_time, near))

    days_away = draw(st.sampled_from([0] * 5 + [-2, -1, 1, 2]))
    day = before_change.date() + timedelta(days=days_away)
    day_of_month, month, weekday = draw(_day_fields(day))

    expression = f"{minute} {hour} {day_of_month} {month} {weekday}"
    return Case(expression, zone, after, change + WINDOW)


def _around(expression: str, zone: str, change: datetime) -> Case:
    return Case(expression, zone, change - WINDOW, change + WINDOW)


BERLIN_SPRING = utc(2026, 3, 29, 1)
BERLIN_FALL = utc(2026, 10, 25, 1)
LORD_HOWE_FALL = utc(2026, 4, 4, 15)  # 02:00 +11:00 becomes 01:30 +10:30
LORD_HOWE_SPRING = utc(2026, 10, 3, 15, 30)  # 02:00 +10:30 becomes 02:30 +11:00


@PROPERTY
@given(cron_cases(fixed_time=True))
@example(_around("30 2 * * *", "Europe/Berlin", BERLIN_SPRING))
@example(_around("0,30 2 * * *", "Europe/Berlin", BERLIN_SPRING))
@example(_around("15 1-3 * * 0", "America/New_York", utc(2026, 11, 1, 6)))
@example(_around("15 2 * * *", LORD_HOWE, LORD_HOWE_SPRING))
@example(_around("45 1 * * *", LORD_HOWE, LORD_HOWE_FALL))
def test_fixed_time_jobs_follow_the_wall_clock_like_the_oracle(case: Case) -> None:
    """A fixed-time job fires exactly when the oracle says, across a clock change."""
    assert chain(case.schedule(), case.after, case.until) == case.oracle()


@PROPERTY
@given(cron_cases(fixed_time=False, zones=WHOLE_HOUR_ZONES))
@example(_around("5 * * * *", "Europe/London", utc(2026, 10, 25, 1)))
@example(_around("*/30 2 * * *", "Europe/Berlin", BERLIN_FALL))
@example(_around("*/30 2 * * *", "Europe/Berlin", BERLIN_SPRING))
def test_wildcard_jobs_follow_real_time_like_the_oracle(case: Case) -> None:
    """A job with `*` in its minute or hour fires at every real matching instant."""
    assert chain(case.schedule(), case.after, case.until) == case.oracle()


@PROPERTY
@given(cron_cases(fixed_time=False, zones=(LORD_HOWE,)))
@example(_around("*/5 2 * * *", LORD_HOWE, LORD_HOWE_FALL))
def test_wildcard_jobs_follow_real_time_like_the_oracle_in_lord_howe(
    case: Case,
) -> None:
    """Where clocks move by half an hour, wildcard jobs still follow real time."""
    assert chain(case.schedule(), case.after, case.until) == case.oracle()


instants = st.lists(st.timedeltas(timedelta(0), 2 * WINDOW), min_size=1, max_size=5)


@PROPERTY
@given(
    st.booleans().flatmap(lambda fixed: cron_cases(fixed_time=fixed, zones=ZONES)),
    instants,
)
def test_the_next_fire_time_from_any_instant_is_the_oracles(
    case: Case, offsets: list[timedelta]
) -> None:
    """From any instant, to the microsecond, the next fire time is the oracle's."""
    schedule = case.schedule()
    expected = case.oracle()

    for offset in offsets:
        instant = case.after + offset
        fire = next_fire_time(schedule, instant)
        following = [time for time in expected if time > instant]
        if following:
            assert fire == following[0]
        else:
            assert fire > case.until


@PROPERTY
@given(st.booleans().flatmap(lambda fixed: cron_cases(fixed_time=fixed)), instants)
@example(_around("*/20 * * * *", LORD_HOWE, LORD_HOWE_FALL), [timedelta(hours=48)])
@example(_around("15 2 * * *", LORD_HOWE, LORD_HOWE_SPRING), [timedelta(hours=48)])
def test_the_next_fire_time_is_strictly_after_any_instant_in_any_zone(
    case: Case, offsets: list[timedelta]
) -> None:
    """In every zone, from any instant, the next fire time is strictly after it."""
    schedule = case.schedule()

    for offset in offsets:
        instant = case.after + offset
        fire = next_fire_time(schedule, instant)
        assert fire is not None
        assert fire > instant


def test_a_time_skipped_by_spring_forward_fires_once_at_the_end_of_the_gap() -> None:
    """Berlin skips 02:30 on 2026-03-29; `30 2 * * *` fires at 03:00 CEST."""
    found = fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28), utc(2026, 3, 31))
    assert found == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first instant after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_time_repeated_by_fall_back_fires_once_on_its_first_pass() -> None:
    """Berlin has 02:30 twice on 2026-10-25; `30 2 * * *` fires at the CEST one."""
    found = fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 27))
    assert found == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST; not 01:30 UTC, 02:30 CET
        utc(2026, 10, 26, 1, 30),
    ]


def test_several_times_inside_one_gap_give_a_single_run() -> None:
    """`0,30 2 * * *` loses 02:00 and 02:30 to the gap and runs once, at 03:00."""
    after, until = utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)
    found = fires("0,30 2 * * *", "Europe/Berlin", after, until)
    assert found == [
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, for both lost times
        utc(2026, 3, 30, 0, 0),
        utc(2026, 3, 30, 0, 30),
    ]


def test_a_half_hourly_job_runs_in_both_copies_of_the_repeated_hour() -> None:
    """On Berlin's fall-back night `*/30 * * * *` fires every real half hour."""
    after, until = utc(2026, 10, 24, 22), utc(2026, 10, 25, 3)
    found = fires("*/30 * * * *", "Europe/Berlin", after, until)
    berlin = ZoneInfo("Europe/Berlin")

    # Five real hours, from 00:00 CEST to 04:00 CET, ten half hours.
    assert found == [after + timedelta(minutes=30 * k) for k in range(1, 11)]
    in_repeated_hour = [fire for fire in found if fire.astimezone(berlin).hour == 2]
    assert in_repeated_hour == [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 1, 0),  # 02:00 CET
        utc(2026, 10, 25, 1, 30),  # 02:30 CET
    ]


def test_lord_howes_half_hour_changes_keep_fire_times_strictly_after() -> None:
    """Lord Howe moves by 30 minutes; each fire time still follows the last."""
    spring = fires("15 2 * * *", LORD_HOWE, utc(2026, 10, 2, 12), utc(2026, 10, 5, 12))
    assert spring == [
        utc(2026, 10, 2, 15, 45),  # 02:15 +10:30
        utc(2026, 10, 3, 15, 30),  # 02:30 +11:00, the end of the gap
        utc(2026, 10, 4, 15, 15),  # 02:15 +11:00
    ]

    fall = fires("45 1 * * *", LORD_HOWE, utc(2026, 4, 3, 12), utc(2026, 4, 6, 12))
    assert fall == [
        utc(2026, 4, 3, 14, 45),  # 01:45 +11:00
        utc(2026, 4, 4, 14, 45),  # 01:45 +11:00; its repeat at 15:15 UTC is skipped
        utc(2026, 4, 5, 15, 15),  # 01:45 +10:30
    ]


def test_both_day_fields_restricted_means_either_day_matches() -> None:
    """Vixie cron: `0 0 13 * 5` fires on every Friday and on the 13th."""
    found = fires("0 0 13 * 5", "UTC", utc(2026, 4, 1), utc(2026, 5, 1))
    fridays = [utc(2026, 4, day) for day in (3, 10, 17, 24)]
    monday_the_13th = utc(2026, 4, 13)
    assert found == sorted([*fridays, monday_the_13th, utc(2026, 5, 1)])


def test_a_day_of_month_starting_with_a_star_means_both_must_match() -> None:
    """`0 0 */2 * 1` fires only on Mondays that fall on an odd day of the month."""
    found = fires("0 0 */2 * 1", "UTC", utc(2026, 4, 1), utc(2026, 5, 31))
    mondays = [utc(2026, 4, 13), utc(2026, 4, 27), utc(2026, 5, 11), utc(2026, 5, 25)]
    assert found == mondays


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 02:00-02:29 +10:30 happen once, just after the fall-back.
        pytest.param(
            "*/5 2 * * *",
            utc(2026, 4, 4, 15, 0),
            utc(2026, 4, 4, 15, 30),
            id="02:00 after fall-back",
        ),
        # 01:30-01:59 happen twice; an hourly job fires in both copies.
        pytest.param(
            "30 * * * *",
            utc(2026, 4, 4, 14, 30),
            utc(2026, 4, 4, 15, 0),
            id="repeated 01:30",
        ),
        # 02:30 +11:00 is the first instant after the gap, and exists.
        pytest.param(
            "30 * * * *",
            utc(2026, 10, 3, 15, 0),
            utc(2026, 10, 3, 15, 30),
            id="02:30 after spring-forward",
        ),
        # An hour after the change, 03:00-03:29 are lost as well.
        pytest.param(
            "* 3 * * *",
            utc(2026, 10, 3, 15, 59),
            utc(2026, 10, 3, 16, 0),
            id="03:00 after spring-forward",
        ),
        # Searching from before the change, 05:00 that day is skipped.
        pytest.param(
            "0 */5 * * *",
            utc(2026, 4, 4, 13, 0),
            utc(2026, 4, 4, 18, 30),
            id="05:00 on fall-back day",
        ),
    ],
)
def test_lord_howe_wildcard_jobs_keep_every_fire_time_on_change_days(
    expression: str, after: datetime, expected: datetime
) -> None:
    """The smallest cases the Lord Howe property test found, one call each."""
    schedule = build_schedule(cron_expression=expression, timezone=LORD_HOWE, now=after)
    oracle = cron_oracle.fire_times(expression, ZoneInfo(LORD_HOWE), after, expected)
    assert oracle == [expected]
    assert next_fire_time(schedule, after) == expected


# Prints the next fire times of the cases in argv[1], and where zoneinfo looked.
_CHILD = """
import json, sys, zoneinfo
from datetime import datetime
from shared.schedule import build_schedule, next_fire_time

answers = []
for expression, zone, after in json.loads(sys.argv[1]):
    after = datetime.fromisoformat(after)
    schedule = build_schedule(cron_expression=expression, timezone=zone, now=after)
    answers.append(next_fire_time(schedule, after).isoformat())
print(json.dumps({"tzpath": list(zoneinfo.TZPATH), "answers": answers}))
"""


def test_fire_times_come_from_the_tzdata_package_not_the_host(tmp_path: Path) -> None:
    """With no system zone files to be found, a child process gives the same times."""
    cases = [
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00"),
        ("30 1 * * *", "America/New_York", "2026-11-01T00:00:00+00:00"),
        ("0 3 * * *", "Europe/Berlin", "2026-12-03T12:00:00+00:00"),
    ]
    here = []
    for expression, zone, after in cases:
        schedule = build_schedule(
            cron_expression=expression, timezone=zone, now=utc(2026, 1, 1)
        )
        fire = next_fire_time(schedule, datetime.fromisoformat(after))
        here.append(fire.isoformat())

    empty = tmp_path / "no-zoneinfo"
    empty.mkdir()
    env = {**os.environ, "TZDIR": str(empty), "PYTHONTZPATH": str(empty)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cases)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout)
    # Nothing but the empty directory, or nothing at all, was searched for zones.
    assert set(answer["tzpath"]) <= {str(empty)}
    assert answer["answers"] == here
