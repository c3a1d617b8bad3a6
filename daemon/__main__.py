"""`python -m daemon`: run one worker daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from daemon.worker import Worker
from shared.errors import TickworkError
from shared.logs import configure_logging
from shared.schema_version import SchemaVersionError
from shared.secrets import SecretKeyError, check_key_for_startup
from shared.settings import SettingsError, get_settings

logger = logging.getLogger("daemon")


class MetricsPortError(TickworkError):
    """The metrics port could not be bound."""


async def _main() -> None:
    settings = get_settings()
    worker = Worker(settings)
    server = None
    if settings.metrics_port is not None:
        try:
            server = worker.metrics.serve(settings.host, settings.metrics_port)
        except OSError as exc:
            raise MetricsPortError(
                f"cannot serve metrics on {settings.host}:{settings.metrics_port} "
                f"({exc}); give each daemon on a host its own TICKWORK_METRICS_PORT"
            ) from exc
        logger.info(
            "serving metrics: url=http://%s:%d/metrics", settings.host, server.port
        )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        if server is not None:
            server.close()


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
    except (SchemaVersionError, MetricsPortError) as exc:
        print(f"tickwork daemon: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Read once here, so that a bad setting stops every path with one line per
    # problem; later calls get the same settings from the cache.
    try:
        get_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"tickwork daemon: {problem}", file=sys.stderr)
        return 2
    if "--check" in args:
        return asyncio.run(_check())
    try:
        configure_logging()
    except ValueError as exc:
        print(f"tickwork daemon: {exc}", file=sys.stderr)
        return 2
    if not get_settings().database_url:
        print("tickwork daemon: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        check_key_for_startup(get_settings())
    except SecretKeyError as exc:
        print(f"tickwork daemon: {exc}", file=sys.stderr)
        return 2
    return _run()


if __name__ == "__main__":
    sys.exit(main())
