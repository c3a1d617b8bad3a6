"""Retry timing: the backoff between failed attempts, and the reconnect policy."""

from __future__ import annotations

import logging
import random

import tenacity

logger = logging.getLogger(__name__)


def retry_delay(
    failures: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the attempt that follows ``failures`` failed ones.

    Exponential (base, 2·base, 4·base, ...) up to ``cap``, then jittered down by
    up to half so that runs that failed together do not retry together.
    """
    ceiling = min(cap, base * 2 ** max(failures - 1, 0))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


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
