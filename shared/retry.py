"""Retry timing: the backoff between failed attempts, ``Retry-After``, and the
reconnect policy."""

from __future__ import annotations

import logging
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import tenacity

logger = logging.getLogger(__name__)

# The share of the exponential ceiling a delay never goes below: full jitter
# spreads retries out, and this floor keeps any of them from being instantaneous.
JITTER_FLOOR = 0.1


def retry_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the attempt that follows ``failures`` failed ones.

    The ceiling grows exponentially (base, 2·base, 4·base, ...) up to ``cap``;
    the delay is drawn uniformly between ``JITTER_FLOOR`` of the ceiling and the
    ceiling ("full jitter"), so runs that failed together do not retry together.
    Any number of failures is fine: the exponent stops growing once the ceiling
    has reached the cap, so there is no overflow.
    """
    ceiling = _ceiling(failures, base=base, cap=cap)
    share = JITTER_FLOOR + (1 - JITTER_FLOOR) * (rng or random).random()
    return ceiling * share


def next_retry_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """The delay before the next attempt, honouring a server's ``Retry-After``.

    A ``retry_after`` (in seconds, see :func:`retry_after_seconds`) replaces the
    computed backoff, but never exceeds ``cap`` and never goes below the
    backoff's floor, so a server cannot make a job retry in a tight loop.
    Without one, the result is :func:`retry_delay`.
    """
    if retry_after is None:
        return retry_delay(failures, base=base, cap=cap, rng=rng)
    floor = min(base, cap) * JITTER_FLOOR
    return min(max(retry_after, floor), cap)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or None to ignore it.

    The header is either a number of seconds or an HTTP-date, read against
    ``now`` (an aware datetime: the response's own ``Date`` is the best
    reference, since it comes from the same clock). A date in the past, a
    negative number or anything unreadable gives None, and the caller falls
    back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Digits only, as RFC 9110 says; very long ones are simply very large.
        return float(text) if len(text) < 300 else math.inf
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT; obsolete forms may not say so.
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return seconds if seconds > 0 else None


def _ceiling(failures: int, *, base: float, cap: float) -> float:
    if base <= 0 or base >= cap:
        return max(min(base, cap), 0.0)
    # The doubling after which base · 2^n passes the cap; beyond it only the cap
    # matters, and 2.0 ** 10_000 would overflow a float.
    enough = math.ceil(math.log2(cap / base)) + 1
    exponent = min(max(failures - 1, 0), enough)
    return min(cap, base * 2.0**exponent)


def reconnect_policy(
    *, what: str, initial: float = 0.5, cap: float = 10.0
) -> tenacity.AsyncRetrying:
    """Retry a database operation forever with capped, jittered backoff.

    For the long-lived loops of both processes: an outage pauses them and they
    carry on by themselves once the database is back.
    """

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "database unavailable, retrying: %s (attempt %d): %s",
            what,
            state.attempt_number,
            exc,
        )

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(OSError)
        | tenacity.retry_if_exception(_is_database_error),
        wait=tenacity.wait_exponential_jitter(multiplier=initial, max=cap),
        before_sleep=log_retry,
        reraise=True,
    )


def _is_database_error(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
