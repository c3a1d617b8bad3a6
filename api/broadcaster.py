"""Live execution updates: one LISTEN connection fanned out to every subscriber.

The database NOTIFYs ``tickwork_executions`` with comma-separated execution ids
whenever executions are inserted or change status. One dedicated connection per
API process listens; each notification is turned into the current rows (one
query) and handed to the subscribers whose job filter matches.

Notifications sent while the connection is down are lost, so after every
reconnect subscribers receive :data:`RESYNC` and re-read what they show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import psycopg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api import store
from shared.db import connect
from shared.models import Execution
from shared.retry import reconnect_policy

logger = logging.getLogger(__name__)

CHANNEL = "tickwork_executions"
QUEUE_SIZE = 1000


class _Resync:
    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = _Resync()
"""Queued after a reconnect: updates may have been missed, re-read the state."""

Update = Execution | _Resync


@dataclass(eq=False)
class Subscriber:
    """One subscription's queue and the job it wants (None: every job)."""

    job_id: uuid.UUID | None
    queue: asyncio.Queue[Update] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )

    def offer(self, update: Update) -> None:
        """Queue ``update``; a slow subscriber loses its oldest update instead."""
        if isinstance(update, Execution) and self.job_id not in (None, update.job_id):
            return
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(update)


class Broadcaster:
    """Owns the LISTEN connection and the set of subscribers."""

    def __init__(
        self, database_url: str, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._url = database_url
        self._sessions = sessions
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._connected_before = False
        self.listening = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def start(self) -> None:
        """Start listening in the background; reconnects run by themselves."""
        self._task = asyncio.create_task(self._run(), name="tickwork-broadcaster")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: uuid.UUID | None) -> AsyncIterator[Subscriber]:
        """A registered subscriber, unregistered when the block exits, however."""
        subscriber = Subscriber(job_id)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def publish(self, updates: Sequence[Update]) -> None:
        for subscriber in list(self._subscribers):
            for update in updates:
                subscriber.offer(update)

    async def _run(self) -> None:
        while True:
            connection = None
            try:
                async for attempt in reconnect_policy(what="listen for executions"):
                    with attempt:
                        connection = await connect(self._url, autocommit=True)
                        await connection.execute(f"LISTEN {CHANNEL}")
                await self._pump(connection)
            except (psycopg.Error, OSError, SQLAlchemyError) as exc:
                # Lost connections and failed re-reads alike: reconnect and resync.
                logger.warning("execution updates interrupted: %s", exc)
            finally:
                self.listening.clear()
                if connection is not None:
                    # Closing may itself fail on a dead socket; nothing is lost.
                    with contextlib.suppress(psycopg.Error, OSError):
                        await connection.close()

    async def _pump(self, connection: psycopg.AsyncConnection) -> None:
        if self._connected_before:
            self.publish([RESYNC])
        self._connected_before = True
        self.listening.set()
        logger.info("listening for execution updates")

        async for notification in connection.notifies():
            if not self._subscribers:
                continue
            ids = _parse_ids(notification.payload)
            if ids:
                async with self._sessions() as session:
                    rows = await store.executions_by_ids(session, ids)
                self.publish(list(rows))
        # The generator only ends when the connection closes.
        raise psycopg.OperationalError("the LISTEN connection closed")


def _parse_ids(payload: str) -> list[uuid.UUID]:
    ids = []
    for part in payload.split(","):
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(part.strip()))
    return ids
