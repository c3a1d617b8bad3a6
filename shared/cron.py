"""Cron expressions: validation with messages that name the field, and the next
fire time in a time zone.

Evaluation is cronsim's, which follows Debian cron: day-of-month and day-of-week
combine with OR when both are restricted, and daylight-saving changes are handled
as Debian cron does (see the README). This module adds what a scheduler needs
around it: the @macros, rejection of forms cron itself would not run, and
messages a person can act on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_NAMES = {
    "month": {
        name: number
        for number, name in enumerate(
            "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1
        )
    },
    "day-of-week": {
        name: number
        for number, name in enumerate("SUN MON TUE WED THU FRI SAT".split())
    },
}
_NUMBER = re.compile(r"^[0-9]+$")
# No zone changes its clock twice within this, so scanning in such steps finds
# every change.
_SCAN_STEP = timedelta(hours=6)


class CronError(ValueError):
    """An expression Tickwork cannot run; the message says which part and why."""


def expand(expression: str) -> str:
    """The five-field form of an expression (macros expanded), whitespace tidied."""
    text = " ".join(expression.split())
    return MACROS.get(text.lower(), text)


def validate(expression: str, zone: ZoneInfo) -> str:
    """Check an expression; return its five-field form or raise CronError."""
    text = " ".join(expression.split())
    if not text:
        raise CronError("must not be empty")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            known = ", ".join(MACROS)
            raise CronError(f"{text} cannot be scheduled; macros supported: {known}")
        text = MACROS[text.lower()]

    fields = text.split(" ")
    if len(fields) != len(_FIELDS):
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    for value, (name, low, high) in zip(fields, _FIELDS, strict=True):
        for item in value.split(","):
            _check_item(item, name, low, high)

    try:
        next(CronSim(text, datetime.now(UTC).astimezone(zone)))
    except CronSimError as exc:
        # Every field passed on its own, so what is left is a combination that
        # never happens, such as 30 February.
        raise CronError(
            f"never fires: the day-of-month and month given never occur together "
            f"({exc})"
        ) from exc
    except StopIteration:
        raise CronError("never fires") from None
    return text


def next_after(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC.

    A job at fixed local times (neither minute nor hour starts with ``*``)
    follows the wall clock, the way Debian cron does, which cronsim implements.
    A job whose minute or hour is a wildcard follows real time: it fires at every
    real instant whose local time matches. That is computed here, one stretch of
    constant UTC offset at a time, because cronsim assumes clocks move by whole
    hours and drops fire times in zones that shift by 30 minutes.
    """
    text = expand(expression)
    minute, hour = text.split(" ", 2)[:2]
    if minute.startswith("*") or hour.startswith("*"):
        return _next_in_real_time(text, zone, after.astimezone(UTC))
    candidate = next(CronSim(text, after.astimezone(zone))).astimezone(UTC)
    while candidate <= after:  # cronsim promises this never happens; keep it so.
        candidate = next(CronSim(text, candidate.astimezone(zone))).astimezone(UTC)
    return candidate


def _next_in_real_time(text: str, zone: ZoneInfo, after: datetime) -> datetime:
    # Within a stretch of constant offset, local time is UTC plus that offset, so
    # cron on naive local times gives the answer; it holds if no clock change
    # comes first. Otherwise the search restarts where the new offset begins.
    start, inclusive = after, False
    while True:
        offset = start.astimezone(zone).utcoffset() or timedelta(0)
        wall = (start + offset).replace(tzinfo=None)
        if inclusive:
            wall -= timedelta(seconds=1)  # cronsim answers strictly after
        candidate = (next(CronSim(text, wall)) - offset).replace(tzinfo=UTC)
        change = _next_offset_change(zone, start, candidate)
        if change is None:
            return candidate
        start, inclusive = change, True


def _next_offset_change(
    zone: ZoneInfo, start: datetime, end: datetime
) -> datetime | None:
    """The first instant in (start, end] with another UTC offset than start's."""
    before = start.astimezone(zone).utcoffset()
    low = start
    while low < end:
        high = min(low + _SCAN_STEP, end)
        if high.astimezone(zone).utcoffset() != before:
            # Clock changes happen on whole seconds: bisect down to one.
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            return high.replace(microsecond=0)
        low = high
    return None


def explain(expression: str) -> str:
    """Plain words for an expression, as far as cronsim can say them."""
    try:
        return CronSim(expand(expression), datetime.now(UTC)).explain()
    except (CronSimError, ValueError):
        return f"Cron {expression}"


def _check_item(item: str, name: str, low: int, high: int) -> None:
    where = f"{name} field: {item!r}"
    if not item:
        raise CronError(f"{name} field has an empty list item")
    upper = item.upper()
    if name == "day-of-month" and upper in ("L", "LW"):
        return
    if name == "day-of-week":
        if re.fullmatch(r"[0-7]L", upper):
            return
        if re.fullmatch(r"[0-7]#[1-5]", upper):
            return

    base, slash, step = item.partition("/")
    if slash:
        if not _NUMBER.match(step) or int(step) < 1:
            raise CronError(f"{where}: the step must be a whole number of at least 1")
        if base != "*" and "-" not in base:
            raise CronError(
                f"{where}: a step needs a range or *, as in {base}-{high}/{step} "
                f"or */{step}"
            )
    if base == "*":
        return
    start, dash, end = base.partition("-")
    first = _value(start, name, low, high, where)
    if dash:
        last = _value(end, name, low, high, where)
        if first > last:
            raise CronError(f"{where}: the range runs backwards")


def _value(text: str, name: str, low: int, high: int, where: str) -> int:
    names = _NAMES.get(name, {})
    if text.upper() in names:
        return names[text.upper()]
    if not _NUMBER.match(text):
        raise CronError(f"{where}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{where}: {value} is out of range {low}-{high}")
    return value
