"""Retry timing: full-jitter backoff, its cap and floor, and ``Retry-After``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.retry import (
    JITTER_FLOOR,
    next_retry_delay,
    retry_after_seconds,
    retry_delay,
)

NOW = datetime(2027, 3, 28, 12, 0, 0, tzinfo=UTC)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def test_the_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    """With the random draw at its top, the delay is the exponential ceiling."""

    class Top(random.Random):
        def random(self) -> float:
            return 1.0

    delays = [retry_delay(n, base=2, cap=60, rng=Top()) for n in range(1, 8)]
    assert delays == [2, 4, 8, 16, 32, 60, 60]


def test_delays_use_full_jitter_between_the_floor_and_the_ceiling() -> None:
    """Draws spread over almost the whole range, never below 10 % of it."""
    rng = random.Random(7)
    for failures, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        delays = [retry_delay(failures, base=2, cap=60, rng=rng) for _ in range(500)]
        assert all(JITTER_FLOOR * ceiling <= d <= ceiling for d in delays)
        # Full jitter: the draws reach both the bottom and the top fifth.
        assert min(delays) < 0.3 * ceiling
        assert max(delays) > 0.9 * ceiling


def test_a_retry_is_never_instantaneous() -> None:
    """Even a draw of zero waits the floor."""

    class Bottom(random.Random):
        def random(self) -> float:
            return 0.0

    assert retry_delay(1, base=2, cap=300, rng=Bottom()) == pytest.approx(0.2)


@pytest.mark.parametrize("failures", [0, 1, 64, 1024, 10_000, 10**9])
def test_any_number_of_failures_stays_within_the_cap(failures: int) -> None:
    """2.0 ** 10_000 overflows a float; the backoff must not."""
    delay = retry_delay(failures, base=2, cap=300)
    assert 0 < delay <= 300


def test_a_base_above_the_cap_waits_the_cap() -> None:
    """A per-job base larger than its cap is bounded by the cap."""
    assert retry_delay(1, base=500, cap=30) <= 30


def test_retry_after_in_seconds_replaces_the_backoff() -> None:
    """The server's number of seconds is taken as it is."""
    assert next_retry_delay(1, base=2, cap=300, retry_after=45) == 45


def test_retry_after_is_capped() -> None:
    """A server asking for a day waits the cap; so does an absurd number."""
    assert next_retry_delay(1, base=2, cap=300, retry_after=86_400) == 300
    huge = retry_after_seconds("9" * 400, now=NOW)
    assert next_retry_delay(1, base=2, cap=300, retry_after=huge) == 300


def test_retry_after_zero_still_waits_the_floor() -> None:
    """A server cannot make a job retry in a tight loop."""
    assert next_retry_delay(1, base=2, cap=300, retry_after=0) == pytest.approx(0.2)


def test_without_retry_after_the_backoff_applies() -> None:
    """None (no header, or one that was ignored) gives the jittered backoff."""
    delay = next_retry_delay(3, base=2, cap=300, rng=random.Random(1))
    assert 0.8 <= delay <= 8


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("120", 120.0), (" 7 ", 7.0)],
)
def test_retry_after_reads_delay_seconds(header: str, seconds: float) -> None:
    """Delay-seconds is a non-negative integer, surrounding spaces allowed."""
    assert retry_after_seconds(header, now=NOW) == seconds


def test_retry_after_reads_an_http_date_against_now() -> None:
    """An IMF-fixdate 90 s after the reference time means 90 s."""
    header = http_date(NOW + timedelta(seconds=90))
    assert retry_after_seconds(header, now=NOW) == 90


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "soon",
        "-5",
        "1.5",
        "12 seconds",
        "Mon, 99 Foo 2027 25:61:00 GMT",
        http_date(NOW - timedelta(minutes=5)),  # in the past
        http_date(NOW),  # now: nothing to wait for
    ],
)
def test_unusable_retry_after_values_are_ignored(header: str | None) -> None:
    """Garbage, negative or fractional numbers and past dates give None."""
    assert retry_after_seconds(header, now=NOW) is None
