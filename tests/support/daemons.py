"""Running daemons in tests: settings with short timings, and waiting for runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from daemon.worker import Worker
from shared.actions import Action
from shared.settings import Settings


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "lease_seconds": 30,
        "retry_base_seconds": 1,
        "retry_max_seconds": 5,
        "heartbeat_seconds": 60,
        "concurrency": 16,
        # Test targets listen on loopback.
        "allow_private_targets": True,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Worker]:
    worker = Worker(settings)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.http.aclose()
        await worker.pool.close()


async def one_pass(settings: Settings) -> Worker:
    """Start a daemon, fire and claim once, wait for those runs, and stop it."""
    async with started(settings) as worker:
        await worker.run_once()
        await settle(worker)
    return worker


async def settle(worker: Worker) -> None:
    """Wait for every run in flight and write their results."""
    await asyncio.gather(*(run.task for run in list(worker.in_flight.values())))
    await worker.flush()


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def webhook(url: str, **options: object) -> Action:
    return Action(kind="webhook", url=url, **options)
