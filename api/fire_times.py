"""When jobs fire, as the API sets and shows it: the first run of a new or
changed schedule, where a resumed job picks up, and lists of coming fire times.

Every ``now`` here is the database clock (``tickwork_now()``), passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared import models
from shared.schedule import Schedule, first_fire_time, next_fire_time

NO_FUTURE_FIRE = "schedule has no future fire time"

# nextRuns and previewSchedule list at most this many fire times.
MAX_FIRE_TIMES = 100
DEFAULT_FIRE_TIMES = 5


def timing(schedule: Schedule, now: datetime) -> dict[str, Any]:
    """The state and next run time a job gets when its schedule starts at ``now``."""
    return _timing(first_fire_time(schedule, now))


def resumed_fire_time(schedule: Schedule, now: datetime) -> datetime | None:
    """Where a job resumed at ``now`` picks up: its first fire time after ``now``.

    The paused period is never caught up. An interval stays on the grid of its
    original anchor, and a one-off whose time passed while paused has nothing left.
    """
    return next_fire_time(schedule, now)


def resumed_timing(schedule: Schedule, now: datetime) -> dict[str, Any]:
    """The state and next run time a paused job gets when resumed at ``now``."""
    return _timing(resumed_fire_time(schedule, now))


def clamp_count(count: int | None) -> int:
    """How many fire times to list: ``count`` within 1..MAX_FIRE_TIMES."""
    if count is None:
        return DEFAULT_FIRE_TIMES
    return max(1, min(count, MAX_FIRE_TIMES))


def fire_times(
    schedule: Schedule, first: datetime | None, count: int
) -> list[datetime]:
    """``first`` and the fire times that follow it, at most ``count`` in all."""
    times: list[datetime] = []
    fire_at = first
    while fire_at is not None and len(times) < count:
        times.append(fire_at)
        fire_at = next_fire_time(schedule, fire_at)
    return times


def next_runs(
    state: models.JobState,
    schedule: Schedule,
    next_run_at: datetime | None,
    now: datetime,
    count: int,
) -> list[datetime]:
    """A saved job's coming fire times: from its next run time when it is active,
    from where resuming at ``now`` would pick up when paused, none when completed."""
    if state == models.JobState.COMPLETED:
        return []
    if state == models.JobState.PAUSED:
        return fire_times(schedule, resumed_fire_time(schedule, now), count)
    return fire_times(schedule, next_run_at, count)


def _timing(next_run_at: datetime | None) -> dict[str, Any]:
    if next_run_at is None:
        return {
            "state": models.JobState.COMPLETED,
            "state_reason": NO_FUTURE_FIRE,
            "next_run_at": None,
        }
    return {
        "state": models.JobState.ACTIVE,
        "state_reason": None,
        "next_run_at": next_run_at,
    }
