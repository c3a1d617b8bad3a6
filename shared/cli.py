"""The `tickwork` command.

``tickwork api`` and ``tickwork daemon`` run one process each, for deployments;
``tickwork migrate`` applies the schema; ``tickwork up`` runs everything on one
machine for development, with an embedded PostgreSQL when no database is set.
The API and the daemon run as separate processes (``python -m api`` and
``python -m daemon``); this module only starts them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from shared.logs import configure_logging
from shared.settings import get_settings

logger = logging.getLogger("tickwork")

SUBCOMMANDS = ("up", "api", "daemon", "migrate")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "api":
        return _exec("api", [])
    if args.command == "daemon":
        return _exec("daemon", ["--check"] if args.check else [])
    try:
        configure_logging()
    except ValueError as exc:
        print(f"tickwork {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate()
    return _up()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickwork", description="A recurring job scheduler on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up",
        help="run the API and a daemon on this machine (development); "
        "starts an embedded PostgreSQL unless TICKWORK_DATABASE_URL is set",
    )
    commands.add_parser("api", help="serve the GraphQL API and the web page")
    daemon = commands.add_parser("daemon", help="run a worker daemon")
    daemon.add_argument(
        "--check",
        action="store_true",
        help="only check that the database answers (exit 0) and stop",
    )
    commands.add_parser("migrate", help="bring the database schema up to date")
    return parser


def _exec(module: str, args: Sequence[str]) -> int:
    """Replace this process with ``python -m module``, so signals reach it."""
    os.execv(sys.executable, [sys.executable, "-m", module, *args])
    return 1  # not reached


def _migrate() -> int:
    from shared.migrate import upgrade

    url = get_settings().database_url
    if not url:
        print("tickwork migrate: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    upgrade(url)
    logger.info("database schema is up to date")
    return 0


def _up() -> int:
    """Embedded PostgreSQL (if needed), migrations, the API and one daemon, until
    Ctrl-C; then everything stops in order."""
    from shared.embedded import EmbeddedPostgres
    from shared.migrate import upgrade

    settings = get_settings()
    env = dict(os.environ)
    env.setdefault("TICKWORK_ENV", "development")
    env.setdefault("TICKWORK_ALLOW_PRIVATE_TARGETS", "true")  # local hooks, /quote
    embedded = None
    url = settings.database_url
    if not url:
        embedded = EmbeddedPostgres(settings.data_dir / "pgdata")
        embedded.start()
        url = embedded.create_database("tickwork")
        env["TICKWORK_DATABASE_URL"] = url

    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        upgrade(url)
        # The API first: the daemon's test jobs fetch their quote from it.
        children.append(subprocess.Popen([sys.executable, "-m", "api"], env=env))
        if not _wait_for_port(settings.host, settings.port, children[0], 30):
            logger.error("the API did not start; see its log above")
            return 1
        children.append(subprocess.Popen([sys.executable, "-m", "daemon"], env=env))
        logger.info(
            "Tickwork is up: http://%s:%d/ (GraphiQL at /graphql); Ctrl-C stops it",
            settings.host,
            settings.port,
        )
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        failed = [c for c in children if c.poll() not in (None, 0)]
        return 1 if failed and not stopping else 0
    finally:
        _stop_children(children, grace=settings.shutdown_grace_seconds + 5)
        if embedded is not None:
            embedded.stop()
        logger.info("Tickwork stopped")


def _wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], timeout: float
) -> bool:
    """Wait until something listens on host:port, while ``process`` lives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop_children(children: list[subprocess.Popen[bytes]], grace: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            logger.warning(
                "process did not stop in time, killing it: pid=%d", child.pid
            )
            child.kill()
            child.wait()


if __name__ == "__main__":
    sys.exit(main())
