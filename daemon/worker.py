"""The worker: schedules due jobs, claims runs, performs them, writes results.

One :class:`Worker` is one daemon. Its steps are separate so tests can drive them:

* :meth:`Worker.run_once` fires due jobs and claims what fits, in one short
  transaction, and starts the claimed runs as asyncio tasks;
* :meth:`Worker.flush` writes finished attempts, many per statement;
* :meth:`Worker.beat` renews every lease and the registry heartbeat at once.

:meth:`Worker.run` drives them until asked to stop. It wakes when a notification
says jobs changed, when a run finishes and frees a slot, and when the database
says the next thing is due; a slow poll only covers lost notifications. No
connection is held while a run talks HTTP.

When the database goes away, the daemon stops claiming, keeps the results of
runs that finish meanwhile in memory, and probes the database with capped,
jittered backoff. Once it answers, those results are written (fenced) before
anything new is claimed, and the LISTEN connection is opened again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import psycopg
import tenacity
from psycopg_pool import AsyncConnectionPool

from daemon import delivery, queue
from daemon.alerts import Alerter
from daemon.maintenance import Pruner
from daemon.queue import Claim, Outcome
from shared.db import connect, libpq_url
from shared.http import HttpClient
from shared.metrics import DaemonMetrics
from shared.retry import reconnect_policy
from shared.schema_version import check_schema
from shared.settings import Settings

logger = logging.getLogger(__name__)

_LOG_LEVELS = {"RETRYING": logging.WARNING, "FAILED": logging.ERROR}

# Longest pause between reconnect attempts while the database is away.
RECONNECT_CAP_SECONDS = 2.0
# Writing the last results and handing runs back, on shutdown, is tried this
# often before the daemon leaves the rest to lease expiry.
SHUTDOWN_WRITE_TRIES = 3

WAKEUP_CHANNEL = "tickwork_wakeup"
# Carries the ids of cancelled executions: a hint to stop them sooner than the
# next lease renewal would.
CANCEL_CHANNEL = "tickwork_cancel"

Perform = Callable[[Claim], Awaitable[Outcome]]

# What a lost or refused database connection raises; PoolTimeout is one too.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError)

# How long a statement waits for a pooled connection before it counts as an
# outage. A refused connection fails sooner than this.
POOL_TIMEOUT_SECONDS = 5.0


@dataclass
class Run:
    """A claimed run this daemon is performing."""

    claim: Claim
    task: asyncio.Task[None]
    claimed_at: float = field(default_factory=time.monotonic)
    # Set once the attempt is over: its result is then the daemon's to write.
    finishing: bool = False


class Outage:
    """Whether the database is away, so that each outage is logged once.

    Every loop reports its failures here; only the first of an outage is a
    WARNING, and the claim loop's successful probe ends it.
    """

    def __init__(self) -> None:
        self.began: float | None = None
        self.over = asyncio.Event()
        self.over.set()

    @property
    def active(self) -> bool:
        return self.began is not None

    def failed(self, what: str, exc: BaseException | None) -> None:
        if self.began is None:
            self.began = time.monotonic()
            self.over.clear()
            logger.warning(
                "database unavailable, claiming paused: during=%s error=%s", what, exc
            )
        else:
            logger.debug("database still unavailable: during=%s error=%s", what, exc)

    def ended(self) -> None:
        if self.began is not None:
            logger.info(
                "database reachable again: down_s=%.1f", time.monotonic() - self.began
            )
            self.began = None
            self.over.set()


class Worker:
    """One daemon: its identity, its runs in flight and its loops."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: HttpClient | None = None,
        perform_run: Perform | None = None,
    ) -> None:
        if settings.database_url is None:
            raise ValueError("the daemon needs TICKWORK_DATABASE_URL")
        self.settings = settings
        self.id = uuid.uuid4()
        self.pool = AsyncConnectionPool(
            libpq_url(settings.database_url),
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True},
            open=False,
            timeout=POOL_TIMEOUT_SECONDS,
            # Reconnecting is the daemon's job (see Outage): the pool's own
            # backoff grows without a cap and would delay the recovery.
            reconnect_timeout=POOL_TIMEOUT_SECONDS,
        )
        # The client checks every target against the egress settings.
        self.http = http or HttpClient.from_settings(
            settings,
            max_connections=max(settings.concurrency, 16),
            per_host=settings.per_host_concurrency,
        )
        self._perform = perform_run or (
            lambda claim: delivery.perform(claim, self.http, settings)
        )
        self.in_flight: dict[uuid.UUID, Run] = {}
        # Where alerts go for jobs without an alertUrl of their own.
        self._alert_url = settings.alert_url
        self.metrics = DaemonMetrics(in_flight=lambda: len(self.in_flight))
        # Results not yet written, oldest first. Each one keeps its slot until
        # it is written (see run_once), so there are never more than
        # `concurrency` of them, however long the database is away.
        self._finished: list[Outcome] = []
        self._flushing = asyncio.Lock()
        self._outage = Outage()
        self._wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._stopping = asyncio.Event()

    # -- steps ---------------------------------------------------------------

    async def start(self) -> None:
        """Check the schema, open the pool and register this daemon."""
        await check_schema(self.settings.database_url or "")
        await self.pool.open(wait=True, timeout=30)
        async with self.pool.connection() as conn:
            await queue.register(
                conn,
                daemon_id=self.id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                concurrency=self.settings.concurrency,
            )
        logger.info("daemon registered: id=%s", self.id)

    async def run_once(self) -> bool:
        """Fire due jobs and claim as many runs as there are free slots.

        Returns whether more work may be waiting right now.
        """
        batch = self.settings.claim_batch
        # A finished run whose result is unwritten still holds its slot: this
        # bounds the results kept in memory during an outage by the concurrency.
        busy = len(self.in_flight) + len(self._finished)
        wanted = max(min(self.settings.concurrency - busy, batch), 0)
        async with self.pool.connection() as conn:
            fired, claims = await queue.schedule_and_claim(
                conn,
                daemon_id=self.id,
                schedule_limit=batch,
                claim_limit=wanted,
                lease_seconds=self.settings.lease_seconds,
                alert_url=self._alert_url,
            )
        if wanted > 0:
            self.metrics.claimed((c.run_at, c.started_at) for c in claims)
        for claim in claims:
            task = asyncio.create_task(self._run(claim))
            self.in_flight[claim.execution_id] = Run(claim, task)
        if fired or claims:
            logger.debug("fired=%d claimed=%d", fired, len(claims))
        has_room = len(self.in_flight) < self.settings.concurrency
        return fired == batch or (has_room and 0 < wanted == len(claims))

    async def flush(self) -> int:
        """Write every finished attempt waiting in memory; returns how many.

        One flush at a time: once a flush returns, every result that was
        waiting when it was called is written. On failure they stay in memory.
        """
        async with self._flushing:
            if not self._finished:
                return 0
            batch = list(self._finished)
            async with self.pool.connection() as conn:
                try:
                    accepted = await queue.finish(
                        conn, batch, alert_url=self._alert_url
                    )
                except psycopg.DataError:
                    accepted = await self._finish_one_by_one(conn, batch)
            # Runs append while the write is under way, never remove.
            del self._finished[: len(batch)]
        for outcome in batch:
            claim = outcome.claim
            if claim.execution_id not in accepted:
                # Taken over, cancelled, or already written by an earlier try
                # whose reply was lost (a write cut short by shutdown or an
                # outage): the fence cannot tell which, so the message does not.
                logger.warning(
                    "result not written, the run is no longer held under this "
                    "claim: execution_id=%s fence=%d",
                    claim.execution_id,
                    claim.fence,
                    extra={"execution_id": str(claim.execution_id)},
                )
        return len(batch)

    async def _finish_one_by_one(
        self, conn: psycopg.AsyncConnection, batch: list[Outcome]
    ) -> set[uuid.UUID]:
        """Write a batch that the database refused, so that one result it cannot
        store (it should never happen) does not hold back the others."""
        accepted: set[uuid.UUID] = set()
        for outcome in batch:
            try:
                accepted |= await queue.finish(
                    conn, [outcome], alert_url=self._alert_url
                )
            except psycopg.DataError as exc:
                logger.error(
                    "result could not be stored: execution_id=%s: %s",
                    outcome.claim.execution_id,
                    exc,
                )
                failed = delivery.outcome(
                    outcome.claim,
                    self.settings,
                    duration=outcome.duration,
                    error=delivery.storable(f"the result could not be stored: {exc}"),
                )
                accepted |= await queue.finish(
                    conn, [failed], alert_url=self._alert_url
                )
        return accepted

    async def beat(self) -> None:
        """Renew all leases and the heartbeat; drop runs this daemon lost; read
        the backlog for the metrics."""
        began = time.monotonic()
        async with self.pool.connection() as conn:
            held = await queue.heartbeat(
                conn, daemon_id=self.id, lease_seconds=self.settings.lease_seconds
            )
            overdue = await queue.oldest_overdue_seconds(conn)
        self.metrics.oldest_overdue.set(overdue)
        for execution_id, run in list(self.in_flight.items()):
            # A run claimed after the heartbeat statement began is not in `held`.
            if run.finishing or run.claimed_at >= began:
                continue
            if held.get(execution_id) != run.claim.fence:
                logger.warning(
                    "run lost its lease, abandoning it: execution_id=%s",
                    execution_id,
                    extra={"execution_id": str(execution_id)},
                )
                run.task.cancel()

    def abandon(self, execution_ids: Iterable[str]) -> None:
        """Stop runs that were cancelled; their results would be fenced out."""
        for text in execution_ids:
            try:
                run = self.in_flight.get(uuid.UUID(text))
            except ValueError:
                continue
            if run is not None and not run.finishing:
                logger.info(
                    "run cancelled, stopping it: execution_id=%s",
                    text,
                    extra={"execution_id": text},
                )
                run.task.cancel()

    # -- loops ---------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or hand back what is in flight."""
        await self._retrying("register", self.start)
        loops = [
            asyncio.create_task(self._listen(), name="listen"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._write_results(), name="write-results"),
            asyncio.create_task(Pruner(self.settings, self.pool).run(), name="prune"),
            asyncio.create_task(
                Alerter(self.settings, self.pool, self.http).run(), name="alerts"
            ),
        ]
        try:
            await self._claim_loop()
        finally:
            await self._shut_down(loops)

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then winds down and returns."""
        self._stopping.set()
        self._wake.set()

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self._outage.active:
                    await self._reconnect()
                    continue
                # Results of runs that ended while the database was away are
                # written first: nothing new is claimed while any is unwritten.
                await self.flush()
                if await self.run_once():
                    continue
                async with self.pool.connection() as conn:
                    delay = await queue.seconds_until_due(conn)
            except CONNECTION_ERRORS as exc:
                self._lost("claim", exc)
                continue
            timeout = self.settings.poll_seconds if delay is None else delay
            timeout = min(max(timeout, 0.0), self.settings.poll_seconds)
            if len(self.in_flight) >= self.settings.concurrency:
                timeout = self.settings.poll_seconds  # a finishing run wakes us
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _run(self, claim: Claim) -> None:
        try:
            outcome = await self._attempt(claim)
            # From here the result is the daemon's to write; a lost lease no
            # longer cancels the run, and the fence decides whether it counts.
            run = self.in_flight.get(claim.execution_id)
            if run is not None:
                run.finishing = True
            self._finished.append(outcome)
            self._results_ready.set()
            self.metrics.finished(outcome.status, outcome.duration)
            _log_finished(outcome)
        except asyncio.CancelledError:
            self.metrics.abandoned()
            raise
        finally:
            self.in_flight.pop(claim.execution_id, None)
            self._wake.set()

    async def _attempt(self, claim: Claim) -> Outcome:
        started = time.monotonic()
        try:
            return await self._perform(claim)
        except Exception as exc:
            # A bug must not leave the run RUNNING for ever: it fails like any
            # attempt, with the error kept on the execution.
            logger.exception(
                "run crashed: execution_id=%s",
                claim.execution_id,
                extra={"execution_id": str(claim.execution_id)},
            )
            return delivery.outcome(
                claim,
                self.settings,
                duration=time.monotonic() - started,
                error=f"internal error in the daemon: {type(exc).__name__}: {exc}",
            )

    async def _write_results(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if self._outage.active:
                continue  # the claim loop writes them as soon as it is back
            try:
                await self.flush()
            except CONNECTION_ERRORS as exc:
                self._lost("write results", exc)

    async def _listen(self) -> None:
        """LISTEN for job changes and cancellations; reconnect after losing the
        connection."""
        url = self.settings.database_url or ""
        while True:
            async for attempt in self._reconnecting("listen"):
                with attempt:
                    conn = await connect(url, autocommit=True)
                    try:
                        await conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
                        await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    except BaseException:
                        await conn.close()
                        raise
            try:
                async with conn:
                    logger.info("listening for wake-ups")
                    # Anything may have changed while we were not listening.
                    self._wake.set()
                    async for notice in conn.notifies():
                        if notice.channel == CANCEL_CHANNEL:
                            self.abandon(notice.payload.split(","))
                        else:
                            self._wake.set()
            except CONNECTION_ERRORS as exc:
                self._lost("listen", exc)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            if self._outage.active:
                # Leases run out meanwhile; an outage longer than the lease
                # hands the runs to whichever daemon claims them first.
                continue
            try:
                await self.beat()
            except CONNECTION_ERRORS as exc:
                self._lost("heartbeat", exc)

    # -- outages -------------------------------------------------------------

    def _lost(self, what: str, exc: BaseException | None) -> None:
        """Note a failed database call and let the claim loop probe for recovery."""
        self._outage.failed(what, exc)
        self._wake.set()

    async def _reconnect(self) -> None:
        """Probe the database until it answers (or the daemon stops), then swap
        out the pool's broken connections and end the outage."""
        url = self.settings.database_url or ""
        async for attempt in self._reconnecting("reconnect"):
            with attempt:
                if self._stopping.is_set():
                    return
                probe = await connect(url, autocommit=True)
                async with probe:
                    await probe.execute("SELECT 1")
        await self.pool.check()
        self._outage.ended()

    def _reconnecting(self, what: str) -> tenacity.AsyncRetrying:
        """The shared reconnect policy, logging through :class:`Outage` and
        waking early when the outage ends or the daemon stops."""

        def note(state: tenacity.RetryCallState) -> None:
            self._lost(what, state.outcome.exception() if state.outcome else None)

        # Probing is one connection attempt, so it can be frequent: the daemon is
        # back within about two seconds of the database.
        policy = reconnect_policy(what=what, cap=RECONNECT_CAP_SECONDS)
        return policy.copy(before_sleep=note, sleep=self._nap)

    async def _nap(self, seconds: float) -> None:
        """Sleep between reconnect attempts, until the outage ends or stop()."""
        ended = asyncio.ensure_future(self._outage.over.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                {ended, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
            stopping.cancel()

    async def _leave(self, unfinished: list[Claim]) -> None:
        """Write every result, hand back unfinished runs and leave the registry."""
        await self.flush()
        async with self.pool.connection() as conn:
            if unfinished:
                returned = await queue.hand_back(conn, unfinished, daemon_id=self.id)
                logger.info("handed back unfinished runs: count=%d", returned)
            await queue.unregister(conn, daemon_id=self.id)

    async def _shut_down(self, loops: list[asyncio.Task[None]]) -> None:
        """Let runs finish within the grace period, hand back the rest, write
        every result, and leave the registry."""
        grace = self.settings.shutdown_grace_seconds
        tasks = [run.task for run in self.in_flight.values()]
        if tasks:
            logger.info(
                "waiting for runs to finish: in_flight=%d grace_s=%g", len(tasks), grace
            )
            await asyncio.wait(tasks, timeout=grace)

        unfinished = [run.claim for run in self.in_flight.values()]
        for run in list(self.in_flight.values()):
            run.task.cancel()
        await asyncio.gather(
            *(t for t in tasks if not t.done()), return_exceptions=True
        )

        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

        try:
            for tries_left in reversed(range(SHUTDOWN_WRITE_TRIES)):
                try:
                    await self._leave(unfinished)
                    break
                except CONNECTION_ERRORS as exc:
                    if not tries_left:
                        # Leases expire by themselves; another daemon takes the
                        # runs over then.
                        logger.error("could not hand back runs on shutdown: %s", exc)
                        break
                    # A pooled connection may have died in a recent outage.
                    await self.pool.check()
                    await asyncio.sleep(1)
        finally:
            await self.http.aclose()
            await self.pool.close()
        logger.info("daemon stopped: id=%s", self.id)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[object]]) -> None:
        async for attempt in reconnect_policy(what=what):
            with attempt:
                await step()


def _log_finished(outcome: Outcome) -> None:
    """One line per attempt: INFO for a success, WARNING when a retry follows,
    ERROR when final. The values are also fields, for JSON logs."""
    claim = outcome.claim
    fields = {
        "execution_id": str(claim.execution_id),
        "job_id": str(claim.job_id),
        "attempt": claim.attempt,
        "status": outcome.status,
        "http_status": outcome.http_status,
        "duration_ms": round(outcome.duration * 1000),
        "error": outcome.error,
    }
    logger.log(
        _LOG_LEVELS.get(outcome.status, logging.INFO),
        "run finished: execution_id=%s job_id=%s attempt=%d status=%s "
        "http_status=%s duration_ms=%d error=%s",
        *fields.values(),
        extra=fields,
    )
