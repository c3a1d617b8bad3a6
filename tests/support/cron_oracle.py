"""A brute-force cron oracle, to check the scheduler against its written policy.

It shares no code with any cron library: it walks UTC minute by minute, turns each
minute into local wall time with zoneinfo, and asks whether a cron job fires then.
Slow, but short enough to check by reading. The policy it encodes:

* Five fields: minute, hour, day of month, month, day of week (0-7, both 0 and 7
  are Sunday). When day of month and day of week are both restricted (neither
  starts with ``*``), a day matches if either matches; otherwise both must match.
* A job at a fixed local time (neither minute nor hour starts with ``*``) follows
  the wall clock. A wall time skipped by a spring-forward fires once, at the first
  instant after the gap, however many of its times fell inside the gap. A wall
  time repeated by a fall-back fires once, on its first occurrence.
* Any other job follows real elapsed time: it fires at every instant whose wall
  time matches, so in both copies of a repeated hour and never in a skipped one.

Only a small grammar is understood: numbers, ``*``, lists ``a,b``, ranges ``a-b``
and steps ``*/n`` and ``a-b/n``. No names, macros, or ``L``, ``W`` and ``#``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)

# (lowest, highest) value of each field, in field order.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


@dataclass(frozen=True)
class CronJob:
    """A parsed expression: the allowed values of each field, and how to read them."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday; a 7 in the expression is stored as 0
    either_day: bool  # both day fields restricted: Vixie's "day of month OR week"
    fixed_time: bool  # neither minute nor hour starts with "*"

    def matches(self, wall: datetime) -> bool:
        """Whether the naive local wall time ``wall`` is one of this job's times."""
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False

        day_ok = wall.day in self.days
        # Python counts Monday as 0; cron counts Sunday as 0.
        weekday_ok = (wall.weekday() + 1) % 7 in self.weekdays
        if self.either_day:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def parse(expression: str) -> CronJob:
    """Parse a five-field expression of the small grammar above."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields in {expression!r}")

    values = [
        _parse_field(text, low, high)
        for text, (low, high) in zip(fields, _BOUNDS, strict=True)
    ]
    weekdays = frozenset(day % 7 for day in values[4])
    return CronJob(
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        either_day=not fields[2].startswith("*") and not fields[4].startswith("*"),
        fixed_time=not fields[0].startswith("*") and not fields[1].startswith("*"),
    )


def fire_times(
    expression: str, zone: ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    """Every fire time in UTC strictly after ``after`` and not after ``until``."""
    job = parse(expression)
    fires = []
    instant = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    previous = (instant - MINUTE).astimezone(zone)

    while instant <= until:
        local = instant.astimezone(zone)
        if _fires(job, previous, local):
            fires.append(instant)
        previous = local
        instant += MINUTE
    return fires


def _fires(job: CronJob, previous: datetime, local: datetime) -> bool:
    """Whether ``job`` fires at ``local``, the minute after ``previous``."""
    wall = local.replace(tzinfo=None, fold=0)
    if not job.fixed_time:
        return job.matches(wall)

    # fold=1 marks the second pass through a repeated wall time.
    if local.fold == 1:
        return False
    if job.matches(wall):
        return True

    # A spring-forward: the wall clock jumped over the minutes in between.
    skipped = previous.replace(tzinfo=None, fold=0) + MINUTE
    while skipped < wall:
        if job.matches(skipped):
            return True
        skipped += MINUTE
    return False


def _parse_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            first, last = (int(part) for part in spec.split("-"))
        elif step_text:
            raise ValueError(f"a step needs * or a range, not {item!r}")
        else:
            first = last = int(spec)
        if not low <= first <= last <= high or step < 1:
            raise ValueError(f"{item!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)
