"""What happens when a job comes due: the occurrences to record, and when next.

One pure function, :func:`plan_firing`, turns a due job, its policies and the
database's "now" into the executions to insert and the job's next fire time. It
decides three things:

* Missed fire times. A fire time is missed once it is later than the job's grace
  period (every daemon was down, or the database was unreachable); before that
  it simply runs late. The catch-up policy says which missed times still run:
  NONE, LATEST (the most recent one) or ALL (up to ``catch_up_limit``, newest
  first). Whatever does not run is recorded as one MISSED execution per gap,
  covering that many fire times, so nothing silently disappears.
* Overlap. If earlier executions are not final yet, FORBID records the new fire
  time as SKIPPED, ALLOW runs it up to ``max_in_flight`` unfinished executions,
  and REPLACE asks for the earlier ones to be cancelled.
* Jitter. Each run gets a ``run_at`` up to ``jitter_seconds`` after its nominal
  fire time, chosen once, so jobs sharing a fire time do not all start together.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.models import CatchUp, Overlap
from shared.schedule import Schedule, next_fire_time

# Walking the cron fire times of a long outage stops here (intervals are counted,
# not walked); the gap is then recorded as covering at least this many.
MAX_ENUMERATED = 20_000

OccurrenceStatus = Literal["PENDING", "SKIPPED", "MISSED"]

# Jitter needs no seed of its own per firing: seeding one costs an OS call.
_RNG = random.Random()


@dataclass(frozen=True)
class Policies:
    """A job's scheduling policies, as stored on the job."""

    catch_up: CatchUp = CatchUp.LATEST
    catch_up_limit: int = 10
    misfire_grace_seconds: int = 60
    overlap: Overlap = Overlap.FORBID
    max_in_flight: int = 5
    jitter_seconds: int = 0


@dataclass(frozen=True)
class Occurrence:
    """One execution to insert for a fire time."""

    scheduled_for: datetime
    status: OccurrenceStatus
    run_at: datetime
    covers: int = 1
    reason: str | None = None


@dataclass(frozen=True)
class Firing:
    """Everything one scheduling pass does to one job."""

    occurrences: list[Occurrence]
    next_run_at: datetime | None
    # REPLACE: cancel the job's unfinished executions before these run.
    cancel_unfinished: bool = False
    reasons: list[str] = field(default_factory=list)


def plan_firing(
    schedule: Schedule,
    policies: Policies,
    *,
    due: datetime,
    now: datetime,
    unfinished: int,
    rng: random.Random | None = None,
) -> Firing:
    """Plan the firing of a job whose ``next_run_at`` (``due``) is at or before
    ``now``, given how many of its executions are ``unfinished``."""
    rng = rng or _RNG
    newest, total, following = _due_times(
        schedule, due, now, keep=max(policies.catch_up_limit, 1)
    )
    grace = timedelta(seconds=policies.misfire_grace_seconds)
    on_time = [t for t in newest if now - t <= grace]
    late = [t for t in newest if now - t > grace]

    # Always a run of the newest times, so the oldest due time is never run when
    # anything is left out.
    if policies.catch_up is CatchUp.NONE:
        runs = on_time
    elif policies.catch_up is CatchUp.LATEST:
        runs = on_time or late[-1:]
    else:
        runs = newest[-policies.catch_up_limit :] if policies.catch_up_limit else []

    occurrences: list[Occurrence] = []
    not_run = total - len(runs)
    if not_run > 0:
        occurrences.append(
            Occurrence(
                scheduled_for=due,
                status="MISSED",
                run_at=due,
                covers=not_run,
                reason=_missed_reason(not_run, policies, total >= MAX_ENUMERATED),
            )
        )

    # Runs planned together overlap each other as much as earlier executions do:
    # under FORBID only the first of a catch-up batch runs.
    cancel = False
    in_flight = unfinished
    for fire_at in runs:
        status, reason = "PENDING", None
        if in_flight and policies.overlap is Overlap.FORBID:
            status, reason = "SKIPPED", "an earlier execution was still unfinished"
        elif policies.overlap is Overlap.ALLOW and in_flight >= policies.max_in_flight:
            status = "SKIPPED"
            reason = f"{in_flight} executions already unfinished (maxInFlight)"
        elif in_flight and policies.overlap is Overlap.REPLACE:
            cancel, in_flight = True, 0
        if status == "PENDING":
            in_flight += 1
        occurrences.append(
            Occurrence(
                scheduled_for=fire_at,
                status=status,
                run_at=_jittered(fire_at, policies.jitter_seconds, rng)
                if status == "PENDING"
                else fire_at,
                reason=reason,
            )
        )
    return Firing(occurrences, following, cancel_unfinished=cancel)


def _due_times(
    schedule: Schedule, due: datetime, now: datetime, *, keep: int
) -> tuple[list[datetime], int, datetime | None]:
    """The newest ``keep`` fire times in [due, now], how many there are in all,
    and the first fire time after now."""
    if schedule.kind == "interval" and schedule.interval_seconds:
        return _due_intervals(schedule, due, now, keep=keep)
    newest: deque[datetime] = deque(maxlen=keep)
    total = 0
    fire_at: datetime | None = due
    while fire_at is not None and fire_at <= now and total < MAX_ENUMERATED:
        newest.append(fire_at)
        total += 1
        fire_at = next_fire_time(schedule, fire_at)
    if fire_at is not None and fire_at <= now:
        # Too many to walk: the rest of the gap is skipped, not enumerated.
        fire_at = next_fire_time(schedule, now)
    return list(newest), total, fire_at


def _due_intervals(
    schedule: Schedule, due: datetime, now: datetime, *, keep: int
) -> tuple[list[datetime], int, datetime | None]:
    step = timedelta(seconds=schedule.interval_seconds or 1)
    total = (now - due) // step + 1
    if schedule.end_at is not None:
        total = min(total, (schedule.end_at - due) // step + 1)
    newest = [due + k * step for k in range(max(total - keep, 0), total)]
    return newest, total, next_fire_time(schedule, newest[-1])


def _jittered(fire_at: datetime, jitter_seconds: int, rng: random.Random) -> datetime:
    if jitter_seconds <= 0:
        return fire_at
    return fire_at + timedelta(seconds=rng.uniform(0, jitter_seconds))


def _missed_reason(count: int, policies: Policies, capped: bool) -> str:
    times = f"at least {count}" if capped else str(count)
    noun = "fire time" if count == 1 else "fire times"
    return (
        f"{times} {noun} not run: no daemon ran them within "
        f"{policies.misfire_grace_seconds} s, and catch-up is "
        f"{policies.catch_up.value}"
    )
