"""Alerts: sends the events queued in the ``alerts`` outbox to their URLs.

The statements that fail an execution, pause a job or record missed fire times
(``daemon/queue.py``) insert an alert row in the same statement, so an alert
exists exactly when its cause was committed. :class:`Alerter` sends them:

* it claims due rows with ``FOR UPDATE SKIP LOCKED`` in one short statement
  that also moves each one's ``next_attempt_at`` a lease ahead, so another
  daemon does not send it meanwhile;
* it POSTs each one, holding no transaction or connection;
* it records each outcome: delivered, or a retry with capped, jittered backoff.
  An alert still failing a day after it was queued is given up: the row stays,
  with its ``last_error``, and is not tried again.

Delivery is at least once. A daemon that stops between sending and recording
leaves the alert to be sent again once its lease expires; every attempt of one
alert carries the same ``webhook-id``, so a receiver can drop the copy.

Alerts are signed as Standard Webhooks describe (``shared/signing.py``), under
the key ``TICKWORK_ALERT_SECRET`` (with a ``whsec_`` prefix, the base64 after it
is the key; otherwise its UTF-8 bytes are). Without a secret, alerts are sent
unsigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.http import DeliveryError, HttpClient, redact_url
from shared.retry import retry_delay
from shared.settings import Settings
from shared.signing import signature_headers, signing_key

logger = logging.getLogger(__name__)

# Seconds one alert POST may take, waiting for a slot of its host included.
SEND_TIMEOUT_SECONDS = 10.0
# How long a claimed alert is this daemon's to send. Well above the send
# timeout: a daemon that stops mid-send leaves its alerts to others after this.
LEASE_SECONDS = 60.0
# An alert still failing this long after it was queued is given up.
GIVE_UP_SECONDS = 86_400.0
# Alerts claimed and sent at once.
BATCH = 20
# How much of a receiver's answer is read: only its status matters.
MAX_ANSWER_BYTES = 1024

# Claims due alerts that this daemon has a URL for: the job's, or its own
# TICKWORK_ALERT_URL. Rows queued by a daemon with a global URL stay for the
# daemons that have one.
CLAIM_ALERTS = """
WITH due AS (
    SELECT a.id, coalesce(j.alert_url, %(alert_url)s::text) AS url
    FROM alerts a JOIN jobs j ON j.id = a.job_id
    WHERE a.delivered_at IS NULL AND a.next_attempt_at <= tickwork_now()
      AND coalesce(j.alert_url, %(alert_url)s::text) IS NOT NULL
    ORDER BY a.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE OF a SKIP LOCKED
)
UPDATE alerts a
SET attempts = a.attempts + 1,
    next_attempt_at = tickwork_now() + make_interval(secs => %(lease)s)
FROM due
WHERE a.id = due.id
RETURNING a.id, a.job_id, a.kind, a.attempts, a.payload, due.url
"""

# Records what became of each send. A row whose attempts moved on was claimed
# again by another daemon after this one's lease ran out: that one records it.
RECORD = """
UPDATE alerts a
SET delivered_at = CASE WHEN r.error IS NULL THEN tickwork_now() END,
    next_attempt_at = CASE
        WHEN r.error IS NULL THEN NULL
        WHEN a.created_at <= tickwork_now() - make_interval(secs => %(give_up)s)
            THEN NULL
        ELSE tickwork_now() + make_interval(secs => r.delay) END,
    last_error = coalesce(r.error, a.last_error)
FROM unnest(
    %(ids)s::bigint[], %(attempts)s::int[], %(errors)s::text[], %(delays)s::float8[]
) AS r(id, attempts, error, delay)
WHERE a.id = r.id AND a.attempts = r.attempts AND a.delivered_at IS NULL
RETURNING a.id, a.next_attempt_at IS NULL AND a.delivered_at IS NULL AS gave_up
"""

# What a lost or refused database connection raises; PoolTimeout is one too.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


@dataclass(frozen=True)
class Claimed:
    """An alert this daemon holds under a lease, with where to send it."""

    id: int
    job_id: Any
    kind: str
    attempts: int
    payload: dict[str, Any]
    url: str

    @property
    def message_id(self) -> str:
        """The Standard Webhooks ``webhook-id``: the same on every attempt."""
        return f"alert_{self.id}"


class Alerter:
    """A daemon's alert sender: one pass every ``alert_poll_seconds``, or sooner
    when :meth:`wake` is called.

    ``retry_base_seconds`` and ``retry_max_seconds`` shape the backoff between
    failed sends; ``clock`` gives the Unix time stamped on each send.
    """

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        http: HttpClient,
        *,
        batch: int = BATCH,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.http = http
        self.batch = batch
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.clock = clock
        secret = settings.alert_secret
        self.key = signing_key(secret.get_secret_value()) if secret else None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for alerts now rather than at the next poll."""
        self._wake.set()

    async def claim(self) -> list[Claimed]:
        """Take up to ``batch`` due alerts under a lease, in one statement."""
        params = {
            "alert_url": self.settings.alert_url,
            "limit": self.batch,
            "lease": LEASE_SECONDS,
        }
        async with (
            self.pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(CLAIM_ALERTS, params)
            return [Claimed(**row) for row in await cur.fetchall()]

    async def run_once(self) -> int:
        """Send every alert due now; returns how many were delivered.

        Claims a batch, sends it, records the outcomes, and goes on while
        batches come back full.
        """
        delivered = 0
        while True:
            alerts = await self.claim()
            if not alerts:
                return delivered
            errors = await asyncio.gather(*(self.send(a) for a in alerts))
            await self._record(alerts, errors)
            delivered += errors.count(None)
            if len(alerts) < self.batch:
                return delivered

    async def send(self, alert: Claimed) -> str | None:
        """POST one alert; returns None when it was accepted, else why not."""
        body = json.dumps(alert.payload, separators=(",", ":")).encode()
        timestamp = int(self.clock())
        keys = [self.key] if self.key is not None else []
        headers = {
            "content-type": "application/json",
            **signature_headers(keys, alert.message_id, timestamp, body),
        }
        try:
            response = await self.http.request(
                "POST",
                alert.url,
                time_limit=SEND_TIMEOUT_SECONDS,
                headers=headers,
                content=body,
                max_body=MAX_ANSWER_BYTES,
            )
        except DeliveryError as exc:
            return str(exc)
        if 200 <= response.status < 300:
            return None
        return f"POST {redact_url(alert.url)} answered HTTP {response.status}"

    async def _record(self, alerts: list[Claimed], errors: list[str | None]) -> None:
        delays = [
            retry_delay(
                alert.attempts,
                base=self.retry_base_seconds,
                cap=self.retry_max_seconds,
            )
            for alert in alerts
        ]
        params = {
            "ids": [a.id for a in alerts],
            "attempts": [a.attempts for a in alerts],
            "errors": errors,
            "delays": delays,
            "give_up": GIVE_UP_SECONDS,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(RECORD, params)
            gave_up = {row[0] for row in await cur.fetchall() if row[1]}

        for alert, error in zip(alerts, errors, strict=True):
            fields = (alert.id, alert.kind, alert.job_id, alert.attempts)
            if error is None:
                logger.info(
                    "alert sent: alert_id=%d kind=%s job_id=%s attempts=%d", *fields
                )
            elif alert.id in gave_up:
                logger.error(
                    "alert given up: alert_id=%d kind=%s job_id=%s attempts=%d "
                    "error=%s",
                    *fields,
                    error,
                )
            else:
                logger.warning(
                    "alert failed, will retry: alert_id=%d kind=%s job_id=%s "
                    "attempts=%d error=%s",
                    *fields,
                    error,
                )

    async def run(self) -> None:
        """Send alerts now and then every ``alert_poll_seconds``, until cancelled.

        A cancellation mid-send leaves the claimed alerts to be sent again once
        their lease expires.
        """
        if self.key is None:
            logger.info("alerts are sent unsigned: TICKWORK_ALERT_SECRET is not set")
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except CONNECTION_ERRORS as exc:
                logger.warning("alerts paused, database unavailable: %s", exc)
            except psycopg.Error:
                # Alerts must not stop the daemon; the next pass tries again.
                logger.exception("sending alerts failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.alert_poll_seconds):
                    await self._wake.wait()
