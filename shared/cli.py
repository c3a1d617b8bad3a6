"""The `tickwork` command.

``tickwork api`` and ``tickwork daemon`` run one process each, for deployments;
``tickwork migrate`` applies the schema; ``tickwork up`` runs everything on one
machine for development, with an embedded PostgreSQL when no database is set.
``tickwork token`` creates, lists and revokes API tokens.
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
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.logs import configure_logging
from shared.settings import AuthMode, SettingsError, get_settings

if TYPE_CHECKING:
    from shared.auth import TokenInfo

logger = logging.getLogger("tickwork")

SUBCOMMANDS = ("up", "api", "daemon", "migrate", "token")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except SettingsError as exc:
        # `api` and `daemon` say this themselves, in the process they become.
        for problem in exc.problems:
            print(f"tickwork {args.command}: {problem}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "api":
        if os.environ.get("TICKWORK_AUTH", "").strip().lower() == AuthMode.OFF:
            print(
                "tickwork api: TICKWORK_AUTH=off is refused: `tickwork api` always "
                "requires a token (`tickwork token create`); only `tickwork up` on "
                "a loopback address runs without one",
                file=sys.stderr,
            )
            return 2
        return _exec("api", [])
    if args.command == "token":
        return _token(args)
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

    token = commands.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="make a token and print it, once; only its hash is stored"
    )
    create.add_argument("--name", required=True, help="a name to tell it by")
    create.add_argument(
        "--scope",
        required=True,
        choices=["read", "write"],
        help="read: queries and subscriptions; write: mutations too",
    )
    actions.add_parser("list", help="show every token, without the tokens")
    revoke = actions.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token", metavar="NAME-or-ID", help="the token's name or id")
    return parser


def _token(args: argparse.Namespace) -> int:
    """`tickwork token create|list|revoke`, straight against the database."""
    import psycopg

    from shared.auth import TokenError, create_token, list_tokens, revoke_token
    from shared.models import TokenScope

    url = get_settings().database_url
    if not url:
        print("tickwork token: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        if args.action == "create":
            info, token = create_token(url, args.name, TokenScope(args.scope))
            print(token)
            print(
                f"Token {info.name!r} ({info.scope.value}, id {info.id}) created. "
                "It is shown only this once: store it now.",
                file=sys.stderr,
            )
        elif args.action == "list":
            _print_tokens(list_tokens(url))
        else:
            info, revoked = revoke_token(url, args.token)
            when = _when(info.revoked_at)
            if revoked:
                print(f"Token {info.name!r} (id {info.id}) revoked.")
            else:
                print(
                    f"Token {info.name!r} (id {info.id}) was revoked already, {when}."
                )
    except TokenError as exc:
        print(f"tickwork token {args.action}: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"tickwork token {args.action}: database error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_tokens(tokens: Sequence[TokenInfo]) -> None:
    rows = [("NAME", "SCOPE", "CREATED", "LAST USED", "REVOKED", "ID")]
    for info in tokens:
        rows.append(
            (
                info.name,
                info.scope.value,
                _when(info.created_at),
                _when(info.last_used_at),
                _when(info.revoked_at),
                str(info.id),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


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
    from shared.auth import is_loopback_host
    from shared.embedded import EmbeddedPostgres
    from shared.migrate import upgrade
    from shared.secrets import key_from_file

    settings = get_settings()
    env = dict(os.environ)
    env.setdefault("TICKWORK_ENV", "development")
    # Open only where nobody else can reach it: a development API on loopback.
    # The API checks this again and refuses to start open anywhere else.
    local = is_loopback_host(settings.host) and env["TICKWORK_ENV"] == "development"
    if local:
        env.setdefault("TICKWORK_AUTH", "off")
    else:
        logger.warning(
            "TICKWORK_HOST=%s is not a loopback address, so authentication stays "
            "on: create a token with `tickwork token create`",
            settings.host,
        )
    env.setdefault("TICKWORK_ALLOW_PRIVATE_TARGETS", "true")  # local hooks, /quote
    if not env.get("TICKWORK_SECRET_KEY"):
        # The same key on every start, or stored secrets could not be read.
        env["TICKWORK_SECRET_KEY"] = key_from_file(settings.data_dir)
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
        if env.get("TICKWORK_AUTH") == "off":
            logger.warning(
                "no token needed: authentication is off for programs on this "
                "machine (development only; `tickwork api` always requires one)"
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
