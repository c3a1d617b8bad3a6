"""Schedules and the one pure function that says when a job fires next.

A schedule is stored on the job as JSON. Three kinds exist:

* ``interval``: every ``interval_seconds``, at ``anchor + k * interval`` (k >= 0),
  however long each run takes, so runs never drift;
* ``cron``: a cron expression evaluated in an IANA time zone (cronsim, which follows
  Debian cron, including its daylight-saving rules);
* ``at``: once, at one instant.

Any kind may carry ``start_at`` and ``end_at`` bounds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from shared import cron
from shared.errors import FieldError, InvalidInputError

ScheduleKind = Literal["interval", "cron", "at"]

# Every instant a schedule is given or fires at lies in this range. Python's
# datetime stops at year 9999, so the upper end leaves room for what is added to
# a fire time later (jitter, retry delays, an offset such as +14:00) and for the
# steps of fire-time arithmetic, none of which may overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "must be between 1970-01-01 and 9000-01-01 UTC"


class Schedule(BaseModel):
    """A validated schedule, as stored in ``jobs.schedule``."""

    model_config = ConfigDict(frozen=True)

    kind: ScheduleKind
    interval_seconds: int | None = None
    cron_expression: str | None = None
    timezone: str = "UTC"
    at: datetime | None = None
    # For intervals the anchor: fire times are start_at + k * interval.
    start_at: datetime | None = None
    end_at: datetime | None = None

    def describe(self) -> str:
        """A plain-language description, for people."""
        if self.kind == "interval":
            text = f"Every {_plural(self.interval_seconds or 0, 'second')}"
        elif self.kind == "cron":
            text = f"{cron.explain(self.cron_expression or '')} ({self.timezone})"
        else:
            text = f"Once at {_iso(self.at)}" if self.at else "Once"
        if self.end_at is not None:
            text += f", until {_iso(self.end_at)}"
        return text


def build_schedule(
    *,
    interval_seconds: int | None = None,
    cron_expression: str | None = None,
    timezone: str | None = None,
    at: datetime | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    now: datetime,
    field: str = "schedule",
) -> Schedule:
    """Validate user input into a :class:`Schedule`, or raise InvalidInputError.

    ``now`` anchors an interval schedule that has no ``start_at``.
    """
    given = [
        name
        for name, value in (
            ("intervalSeconds", interval_seconds),
            ("cron", cron_expression),
            ("at", at),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InvalidInputError.single(
            field, "give exactly one of intervalSeconds, cron or at"
        )

    errors: list[FieldError] = []
    for name, value in (("startAt", start_at), ("endAt", end_at), ("at", at)):
        if value is not None:
            errors.extend(check_instant(value, f"{field}.{name}"))
    if errors:
        raise InvalidInputError(errors)
    if start_at and end_at and end_at <= start_at:
        errors.append(FieldError(f"{field}.endAt", "must be after startAt"))

    if interval_seconds is not None:
        if interval_seconds < 1:
            errors.append(
                FieldError(f"{field}.intervalSeconds", "must be at least 1 second")
            )
        schedule = Schedule(
            kind="interval",
            interval_seconds=interval_seconds,
            start_at=_utc(start_at or now),
            end_at=_utc(end_at),
        )
    elif cron_expression is not None:
        expression = " ".join(cron_expression.split())
        tz_name = "UTC" if timezone is None else timezone.strip()
        zone = _zone(tz_name, f"{field}.cron.timezone", errors)
        # Checked even when the zone is bad, so that both mistakes are named.
        _check_cron(
            expression, zone or ZoneInfo("UTC"), f"{field}.cron.expression", errors
        )
        schedule = Schedule(
            kind="cron",
            cron_expression=expression,
            timezone=tz_name,
            start_at=_utc(start_at),
            end_at=_utc(end_at),
        )
    else:
        schedule = Schedule(
            kind="at", at=_utc(at), start_at=_utc(start_at), end_at=_utc(end_at)
        )

    if errors:
        raise InvalidInputError(errors)
    return schedule


def check_instant(value: datetime, field: str) -> list[FieldError]:
    """What is wrong with ``value`` as an instant of a schedule, if anything:
    it needs a UTC offset and must lie between EARLIEST and LATEST."""
    if value.tzinfo is None:
        return [FieldError(field, "needs a UTC offset")]
    # Compared before any conversion: in UTC, 0001-01-01T00:00+14:00 is a
    # time Python's datetime cannot hold.
    if not EARLIEST <= value <= LATEST:
        return [FieldError(field, OUT_OF_RANGE)]
    return []


def next_fire_time(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, or None when there is none.

    Pure: the same schedule and instant always give the same answer, in UTC.
    A schedule has no fire time after LATEST: the times it would give there are
    past what the rest of the computations can hold.
    """
    after = _utc(after)
    if schedule.start_at is not None and schedule.kind != "interval":
        after = max(after, schedule.start_at - timedelta(microseconds=1))
    if after >= LATEST:
        # A schedule stored before its instants were bounded can start here.
        return None

    if schedule.kind == "interval":
        candidate = _next_interval(schedule, after)
    elif schedule.kind == "cron":
        zone = ZoneInfo(schedule.timezone)
        candidate = cron.next_after(schedule.cron_expression or "", zone, after)
    else:
        candidate = schedule.at if schedule.at and schedule.at > after else None

    if candidate is None or candidate > LATEST:
        return None
    if schedule.end_at and candidate > schedule.end_at:
        return None
    return candidate


def first_fire_time(schedule: Schedule, now: datetime) -> datetime | None:
    """When a new or changed job fires first.

    A one-off whose time has passed fires at once (its stored time, already due);
    the other kinds fire at their first time at or after ``now``.
    """
    if schedule.kind == "at":
        return schedule.at
    return next_fire_time(schedule, _utc(now) - timedelta(microseconds=1))


def _next_interval(schedule: Schedule, after: datetime) -> datetime | None:
    anchor = schedule.start_at
    step = timedelta(seconds=schedule.interval_seconds or 1)
    try:
        if anchor is None or after < anchor:
            return anchor or after + step
        periods = (after - anchor) // step + 1
        return anchor + periods * step
    except OverflowError:
        return None  # a step that lands past year 9999: long after LATEST


def _zone(name: str, field: str, errors: list[FieldError]) -> ZoneInfo | None:
    if not name:
        errors.append(FieldError(field, "must not be empty"))
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError(field, f"unknown time zone {name!r}"))
        return None


def _check_cron(
    expression: str, zone: ZoneInfo, field: str, errors: list[FieldError]
) -> None:
    try:
        cron.validate(expression, zone)
    except cron.CronError as exc:
        errors.append(FieldError(field, str(exc)))


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
