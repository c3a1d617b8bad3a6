"""Which cron expressions Tickwork runs, and what it says about the others."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared import cron

UTC_ZONE = ZoneInfo("UTC")
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("macro", "first"),
    [
        ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
        ("@annually", datetime(2027, 1, 1, tzinfo=UTC)),
        ("@monthly", datetime(2026, 2, 1, tzinfo=UTC)),
        ("@weekly", datetime(2026, 1, 4, tzinfo=UTC)),  # a Sunday
        ("@daily", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@midnight", datetime(2026, 1, 2, tzinfo=UTC)),
        ("@hourly", datetime(2026, 1, 1, 1, tzinfo=UTC)),
    ],
)
def test_macros_fire_when_their_names_say(macro: str, first: datetime) -> None:
    """Each @macro is accepted and means what Vixie cron means by it."""
    assert cron.validate(macro, UTC_ZONE)
    assert cron.next_after(macro, UTC_ZONE, JAN_1) == first


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("0 0 L * *", datetime(2026, 1, 31, tzinfo=UTC)),
        ("0 0 LW * *", datetime(2026, 1, 30, tzinfo=UTC)),
        ("0 0 * * 5L", datetime(2026, 1, 30, tzinfo=UTC)),
        ("0 0 * * 5#2", datetime(2026, 1, 9, tzinfo=UTC)),
        ("0 9 * JAN-MAR MON-FRI", datetime(2026, 1, 1, 9, tzinfo=UTC)),
        ("0 0 13 * 5", datetime(2026, 1, 2, tzinfo=UTC)),  # a Friday: OR
    ],
)
def test_the_extended_forms_are_supported(expression: str, first: datetime) -> None:
    """L, LW, nL, #n and names work; restricted day fields combine with OR."""
    cron.validate(expression, UTC_ZONE)
    assert cron.next_after(expression, UTC_ZONE, JAN_1) == first


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("@reboot", "@reboot cannot be scheduled"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
        ("60 * * * *", "minute field: '60': 60 is out of range 0-59"),
        ("* 24 * * *", "hour field: '24': 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: '0': 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field: '13': 13 is out of range 1-12"),
        ("0/10 * * * *", "minute field: '0/10': a step needs a range or *"),
        ("*/0 * * * *", "the step must be a whole number of at least 1"),
        ("5-1 * * * *", "the range runs backwards"),
        ("* * * *", "expected 5 fields"),
        ("0 * * * * *", "expected 5 fields"),
        ("x * * * *", "'x' is not a number"),
        ("1,,2 * * * *", "empty list item"),
    ],
)
def test_what_cannot_run_is_refused_with_the_field_and_reason(
    expression: str, words: str
) -> None:
    """The message names the cron field at fault and what is wrong with it."""
    with pytest.raises(cron.CronError) as exc:
        cron.validate(expression, UTC_ZONE)
    assert words in str(exc.value)
