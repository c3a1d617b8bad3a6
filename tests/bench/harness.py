"""What every benchmark scenario shares: the server, databases, processes, GraphQL.

The PostgreSQL server is the embedded one (``shared/embedded.py``) in a temporary
directory, restarted once with ``pg_stat_statements`` preloaded, or the server
in ``TICKWORK_BENCH_DATABASE_URL``. Each measured run gets a fresh database
cloned from one migrated template, so runs do not see each other's rows.
Tickwork runs as real ``tickwork api`` / ``tickwork daemon`` processes.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg.types.json import Jsonb

from shared.actions import Action
from shared.db import libpq_url, with_database
from shared.migrate import upgrade
from shared.schedule import Schedule

logger = logging.getLogger(__name__)

TEMPLATE = "bench_template"
RESULTS = Path(__file__).resolve().parent / "results"

# What every Tickwork process of the benchmark runs with. Authentication and
# egress control are on, as in production: the benchmark holds a write token,
# and the daemons may reach the loopback sinks. The secret key (a Fernet key)
# encrypts job secrets, which production requires.
TOKEN = secrets.token_urlsafe(32)
BASE_SETTINGS = {
    "TICKWORK_ENV": "production",
    "TICKWORK_BOOTSTRAP_TOKEN": TOKEN,
    "TICKWORK_ALLOW_PRIVATE_TARGETS": "true",
    "TICKWORK_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, ``p`` in 0..100."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def lag_summary(lags_ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(lags_ms),
        "p50": percentile(lags_ms, 50),
        "p95": percentile(lags_ms, 95),
        "p99": percentile(lags_ms, 99),
        "max": max(lags_ms) if lags_ms else float("nan"),
    }


@dataclass
class Figure:
    """One measured quantity over the repetitions of a scenario."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": min(self.values, default=float("nan")),
            "max": max(self.values, default=float("nan")),
            "runs": self.values,
        }


class Server:
    """The PostgreSQL server of one benchmark session and its migrated template."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._embedded = None
        self.url = ""
        self.stat_statements = False

    def start(self) -> None:
        configured = os.environ.get("TICKWORK_BENCH_DATABASE_URL")
        if configured:
            self.url = libpq_url(configured)
        else:
            self.url = self._start_embedded()
        with self.connect("postgres") as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
                self.stat_statements = True
            except psycopg.Error:
                logger.warning("pg_stat_statements unavailable: counting commits")
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        upgrade(with_database(self.url, TEMPLATE))

    def _start_embedded(self) -> str:
        from shared.embedded import EmbeddedPostgres

        data_dir = self.work_dir / "pgdata"
        embedded = EmbeddedPostgres(data_dir)
        url = embedded.start()
        # The settings below need a restart; the extension ships with the server.
        with psycopg.connect(url, autocommit=True) as conn:
            for name, value in (
                ("shared_preload_libraries", "pg_stat_statements"),
                ("max_connections", "300"),
                ("shared_buffers", "512MB"),
            ):
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        embedded.stop()
        self._embedded = EmbeddedPostgres(data_dir)
        return self._embedded.start()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()

    def cpu_seconds(self) -> float:
        """CPU time used so far by the embedded server's live processes (NaN for
        a server of its own): backends that have exited no longer count."""
        if self._embedded is None or self._embedded._server is None:
            return float("nan")
        postmaster = psutil.Process(self._embedded._server.get_pid())
        total = 0.0
        for process in (postmaster, *postmaster.children()):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def connect(self, database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(with_database(self.url, database), autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return with_database(self.url, name)

    def drop_database(self, name: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def version(self) -> str:
        with self.connect("postgres") as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def socket_host_and_port(self) -> tuple[str, str]:
        """Host and port as the peers' scripts take them (PGHOST, PGPORT)."""
        with self.connect("postgres") as conn:
            info = conn.info
            return info.host, str(info.port)


@dataclass
class Session:
    """What a scenario gets: the server, where logs go, and how long to run."""

    server: Server
    work_dir: Path
    quick: bool
    reps: int
    # Seconds each capacity level is measured for, after its warm-up: with it,
    # the jobs run for a minute.
    capacity_window: float = 55.0
    # Daemons the capacity scenario runs (one: what a single process keeps up with).
    capacity_daemons: int = 1

    def log_dir(self, name: str) -> Path:
        path = self.work_dir / "logs" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class Counters:
    """Statements and transactions a database ran between two readings."""

    def __init__(self, server: Server, database: str) -> None:
        self.server = server
        self.database = database

    def reset(self) -> None:
        # Pending statistics reach the shared counters about once a second.
        time.sleep(1.2)
        self._start = self._read()

    def delta(self) -> dict[str, int]:
        time.sleep(1.2)
        end = self._read()
        return {name: end[name] - self._start[name] for name in end}

    def _read(self) -> dict[str, int]:
        with self.server.connect("postgres") as conn:
            oid, commits, rollbacks = conn.execute(
                "SELECT datid, xact_commit, xact_rollback FROM pg_stat_database "
                "WHERE datname = %s",
                (self.database,),
            ).fetchone()
            counts = {"transactions": commits + rollbacks}
            if self.server.stat_statements:
                (calls,) = conn.execute(
                    "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
                    "WHERE dbid = %s",
                    (oid,),
                ).fetchone()
                counts["statements"] = calls
        with self.server.connect(self.database) as conn:
            (rows,) = conn.execute(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
                "FROM pg_stat_user_tables"
            ).fetchone()
            counts["row_writes"] = rows
        return counts


class Tickwork:
    """The API and daemons of one measured run, as real processes."""

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **BASE_SETTINGS,
            "TICKWORK_DATABASE_URL": database_url,
            "TICKWORK_PORT": str(self.port),
            **{f"TICKWORK_{name.upper()}": value for name, value in settings.items()},
        }
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.daemons: list[subprocess.Popen[bytes]] = []

    def start(self, command: str) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{command}-{len(self.processes)}.log"
        with path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        if command == "daemon":
            self.daemons.append(process)
        return process

    def start_api(self) -> None:
        self.start("api")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not get ready; see {self.log_dir}")

    def graphql(self, query: str, **variables: object) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def tickwork(database_url: str, log_dir: Path, **settings: str) -> Iterator[Tickwork]:
    processes = Tickwork(database_url, log_dir, **settings)
    try:
        yield processes
    finally:
        processes.stop()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until(check, timeout: float, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_for(check, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Like :func:`wait_until`, but a timeout fails the scenario, saying ``what``."""
    value = wait_until(check, timeout, interval)
    if not value:
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
    return value


# Jobs are written straight into the table for the large scenarios: creating
# tens of thousands through the API would measure the API instead. The JSON is
# what the API stores: the validated models, dumped.
def interval_schedule(seconds: int, start_at: datetime) -> dict[str, Any]:
    return Schedule(
        kind="interval", interval_seconds=seconds, start_at=start_at
    ).model_dump(mode="json")


def once_schedule(at: datetime) -> dict[str, Any]:
    return Schedule(kind="at", at=at).model_dump(mode="json")


def webhook_action(url: str) -> dict[str, Any]:
    return Action(kind="webhook", url=url).model_dump(mode="json")


def insert_jobs(
    conn: psycopg.Connection[Any],
    schedules: Sequence[dict[str, Any]],
    actions: Sequence[dict[str, Any]],
    next_run_ats: Sequence[datetime],
    name: str = "bench",
) -> list[uuid.UUID]:
    """Insert one ACTIVE job per element, in one statement; returns the ids."""
    ids = [uuid.uuid4() for _ in schedules]
    conn.execute(
        "INSERT INTO jobs (id, name, schedule, action, max_retries, timeout_seconds,"
        " state, next_run_at) "
        "SELECT id, %s || ' ' || n, s, a, 0, 30, 'ACTIVE', t "
        "FROM unnest(%s::uuid[], %s::jsonb[], %s::jsonb[], %s::timestamptz[]) "
        "WITH ORDINALITY AS x(id, s, a, t, n)",
        (
            name,
            ids,
            [Jsonb(s) for s in schedules],
            [Jsonb(a) for a in actions],
            list(next_run_ats),
        ),
    )
    return ids


def db_now(conn: psycopg.Connection[Any]) -> datetime:
    return conn.execute("SELECT tickwork_now()").fetchone()[0]


class Sink:
    """``tests/bench/sink.py`` in a process of its own."""

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",), delay: float = 0):
        self.hosts = list(hosts)
        self.port = free_port()
        command = [sys.executable, "-m", "tests.bench.sink", "--port", str(self.port)]
        for host in self.hosts:
            command += ["--host", host]
        if delay:
            command += ["--delay", str(delay)]
        self.process = subprocess.Popen(command)
        self._seen = 0
        ready = wait_until(self._listening, timeout=10)
        if not ready:
            self.stop()
            raise RuntimeError("the benchmark sink did not start")

    def _listening(self) -> bool:
        try:
            socket.create_connection((self.hosts[-1], self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def url(self, host: str | None = None, path: str = "/hook") -> str:
        return f"http://{host or self.hosts[0]}:{self.port}{path}"

    def records(self) -> list[tuple[str, float]]:
        """Every request received so far: (Idempotency-Key, time.time())."""
        response = httpx.get(f"{self.url(path='/_records')}?since=0", timeout=30)
        return [(key, t) for key, t in response.json()]

    def count(self) -> int:
        return int(httpx.get(self.url(path="/_count"), timeout=10).text)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def sink(hosts: Sequence[str] = ("127.0.0.1",), delay: float = 0) -> Iterator[Sink]:
    receiver = Sink(hosts, delay)
    try:
        yield receiver
    finally:
        receiver.stop()
