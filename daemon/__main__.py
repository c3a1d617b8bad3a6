"""`python -m daemon`: run one worker daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from daemon.worker import Worker
from shared.logs import configure_logging
from shared.schema_version import SchemaVersionError
from shared.settings import get_settings

logger = logging.getLogger("daemon")


async def _main() -> None:
    worker = Worker(get_settings())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()


async def _check() -> int:
    """Exit status for a container health check: 0 when the database answers."""
    from shared.db import connect

    settings = get_settings()
    if not settings.database_url:
        print("tickwork daemon: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        conn = await connect(settings.database_url)
        async with conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


def _run() -> int:
    try:
        asyncio.run(_main())
    except SchemaVersionError as exc:
        print(f"tickwork daemon: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        return asyncio.run(_check())
    configure_logging()
    if not get_settings().database_url:
        print("tickwork daemon: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    return _run()


if __name__ == "__main__":
    sys.exit(main())
