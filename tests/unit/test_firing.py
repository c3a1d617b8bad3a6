"""What a due job turns into: catch-up, overlap and jitter decisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.firing import Policies, plan_firing
from shared.models import CatchUp, Overlap
from shared.schedule import build_schedule

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
MINUTELY = build_schedule(interval_seconds=60, now=T0)


def summary(firing) -> list[tuple[str, int, int]]:
    """(status, minutes after T0, fire times covered) per occurrence."""
    return [
        (o.status, int((o.scheduled_for - T0).total_seconds() // 60), o.covers)
        for o in firing.occurrences
    ]


def test_a_fire_time_within_the_grace_period_just_runs_late() -> None:
    """30 s late with a 60 s grace is not missed: one run, nothing recorded missed."""
    firing = plan_firing(
        MINUTELY, Policies(), due=T0, now=T0 + timedelta(seconds=30), unfinished=0
    )
    assert summary(firing) == [("PENDING", 0, 1)]
    assert firing.next_run_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        # An outage from 12:00 to 12:10:30: fire times 12:00..12:10 are due, and
        # only 12:10 is within the grace period.
        (CatchUp.NONE, [("MISSED", 0, 10), ("PENDING", 10, 1)]),
        (CatchUp.LATEST, [("MISSED", 0, 10), ("PENDING", 10, 1)]),
        (
            CatchUp.ALL,
            [("MISSED", 0, 6), ("PENDING", 6, 1)]
            + [("SKIPPED", m, 1) for m in range(7, 11)],
        ),
    ],
)
def test_each_catch_up_policy_after_an_outage(
    catch_up: CatchUp, expected: list[tuple[str, int, int]]
) -> None:
    """Missed fire times become one MISSED gap; the policy picks what still runs."""
    firing = plan_firing(
        MINUTELY,
        Policies(catch_up=catch_up, catch_up_limit=5),
        due=T0,
        now=T0 + timedelta(minutes=10, seconds=30),
        unfinished=0,
    )
    assert summary(firing) == expected
    assert firing.next_run_at == T0 + timedelta(minutes=11)


def test_latest_runs_the_newest_missed_time_when_none_is_on_time() -> None:
    """Down past the grace of every fire time: LATEST still runs the newest one."""
    hourly = build_schedule(interval_seconds=3600, now=T0)
    firing = plan_firing(
        hourly, Policies(), due=T0, now=T0 + timedelta(hours=3, minutes=5), unfinished=0
    )
    assert [(o.status, o.scheduled_for, o.covers) for o in firing.occurrences] == [
        ("MISSED", T0, 3),
        ("PENDING", T0 + timedelta(hours=3), 1),
    ]
    assert "3 fire times" in firing.occurrences[0].reason


def test_a_long_outage_of_a_frequent_job_is_counted_not_enumerated() -> None:
    """A 1-second job down for a day: one run, and the rest counted exactly."""
    every_second = build_schedule(interval_seconds=1, now=T0)
    now = T0 + timedelta(days=1)
    firing = plan_firing(every_second, Policies(), due=T0, now=now, unfinished=0)
    missed, *runs = firing.occurrences
    # The ten newest (catchUpLimit) are within the grace period and due; the
    # first runs, and FORBID skips the others, which overlap it.
    assert [o.status for o in runs] == ["PENDING"] + ["SKIPPED"] * 9
    assert runs[-1].scheduled_for == now
    assert missed.covers == 86_401 - 10


def test_all_with_allow_catches_up_every_missed_time_up_to_the_cap() -> None:
    """ALL runs each missed time (newest first by the limit) as ALLOW permits."""
    firing = plan_firing(
        MINUTELY,
        Policies(catch_up=CatchUp.ALL, catch_up_limit=5, overlap=Overlap.ALLOW),
        due=T0,
        now=T0 + timedelta(minutes=4, seconds=30),
        unfinished=0,
    )
    assert summary(firing) == [("PENDING", m, 1) for m in range(5)]


@pytest.mark.parametrize(
    ("overlap", "unfinished", "status", "cancel"),
    [
        (Overlap.FORBID, 0, "PENDING", False),
        (Overlap.FORBID, 1, "SKIPPED", False),
        (Overlap.ALLOW, 4, "PENDING", False),
        (Overlap.ALLOW, 5, "SKIPPED", False),
        (Overlap.REPLACE, 2, "PENDING", True),
    ],
)
def test_overlap_policies(
    overlap: Overlap, unfinished: int, status: str, cancel: bool
) -> None:
    """FORBID skips, ALLOW runs up to maxInFlight, REPLACE cancels the earlier."""
    firing = plan_firing(
        MINUTELY,
        Policies(overlap=overlap, max_in_flight=5),
        due=T0,
        now=T0,
        unfinished=unfinished,
    )
    [occurrence] = firing.occurrences
    assert occurrence.status == status
    assert firing.cancel_unfinished is cancel
    if status == "SKIPPED":
        assert occurrence.reason


def test_jitter_delays_the_run_but_keeps_the_nominal_fire_time() -> None:
    """runAt lands within the jitter window; scheduledFor stays the fire time."""
    rng = random.Random(1)
    delays = []
    for _ in range(50):
        firing = plan_firing(
            MINUTELY, Policies(jitter_seconds=30), due=T0, now=T0, unfinished=0, rng=rng
        )
        [occurrence] = firing.occurrences
        assert occurrence.scheduled_for == T0
        delays.append((occurrence.run_at - T0).total_seconds())
    assert all(0 <= d <= 30 for d in delays)
    assert max(delays) - min(delays) > 10


def test_a_one_off_has_no_next_fire_time_after_its_run() -> None:
    """An `at` job plans its single run and nothing after it."""
    once = build_schedule(at=T0, now=T0)
    firing = plan_firing(once, Policies(), due=T0, now=T0, unfinished=0)
    assert summary(firing) == [("PENDING", 0, 1)]
    assert firing.next_run_at is None
