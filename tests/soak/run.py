"""Soak Tickwork for minutes while its daemons are killed and PostgreSQL restarts.

Not part of ``make test``. ``make soak`` runs it for 3 minutes; directly:

    .venv/bin/python -m tests.soak.run --minutes 2 --seed 7

It initialises a PostgreSQL cluster of its own (tests/support/cluster.py, never
the shared test server), migrates it, and starts ``tickwork api`` and three
``tickwork daemon`` processes with a 5 s lease. Over GraphQL it creates interval
webhook jobs (every 1 to 3 s) aimed at three local targets: a healthy one, a
flaky one (503 for about 30 % of requests; its jobs retry up to 3 times) and a
slow one (answers after 2 to 4 s); a quarter into the run it adds a burst of
one-off jobs. Every webhook carries its execution id as Idempotency-Key.

Meanwhile it SIGKILLs a random daemon about every 40 s and starts another,
stops PostgreSQL for 5 s once, and SIGTERMs one daemon once (and replaces it).
At the end it pauses every job, waits (at most 90 s) until no execution is
PENDING, RUNNING or RETRYING, stops the processes and prints:

* due: executions created;
* delivered: idempotency keys that reached a target at least once;
* lost: executions that never reached a final status, or SUCCEEDED without a
  target having accepted (answered 2xx to) their key; must be 0;
* duplicated: keys a target accepted more than once, and how many of those are
  explained: the execution has an ABANDONED attempt (its daemon was killed, or
  handed the run back at SIGTERM) or an attempt spanning the outage. Keys sent
  again after the flaky target's 503 are retries, not duplicates, and are
  counted apart;
* the final statuses, the signals' effects and the run's duration.

It exits 1 if anything was lost or a duplicate is unexplained. The processes'
logs stay in a temporary directory whose path it prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from shared.migrate import upgrade
from tests.support.cluster import Cluster
from tests.support.processes import Tickwork

logger = logging.getLogger("tests.soak")

DAEMONS = 3
LEASE_SECONDS = 5
KILL_EVERY_SECONDS = 40.0
OUTAGE_SECONDS = 5.0
SETTLE_SECONDS = 90.0
FLAKY_FAILURE_RATE = 0.3
JOBS = {"ok": 12, "flaky": 6, "slow": 3}
BURST = 100
# The API refuses a request with more aliases than this.
MAX_ALIASES = 15
FINAL = {"SUCCEEDED", "FAILED", "SKIPPED", "MISSED", "CANCELLED"}


@dataclass(frozen=True)
class Delivery:
    """One request a target received: its idempotency key and whether it took it."""

    key: str
    accepted: bool


class _Server(ThreadingHTTPServer):
    # Bursts of runs start at once; the default backlog of 5 would refuse some.
    request_queue_size = 512
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A daemon killed mid-request closes its socket: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SoakTarget:
    """A webhook target on loopback that records each delivery's key and answer.

    ``kind`` is ``ok`` (always 200), ``flaky`` (503 at ``FLAKY_FAILURE_RATE``)
    or ``slow`` (200 after 2 to 4 s). A request counts as accepted when the
    target decides to answer 2xx, before any delay: a slow answer the daemon
    never read still means the receiver processed the key.
    """

    def __init__(self, kind: str, rng: random.Random) -> None:
        self.kind = kind
        self.deliveries: list[Delivery] = []
        self._rng = rng
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                target._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        handler.rfile.read(length)
        key = handler.headers.get("idempotency-key", "")
        with self._lock:
            failing = self.kind == "flaky" and self._rng.random() < FLAKY_FAILURE_RATE
            delay = self._rng.uniform(2, 4) if self.kind == "slow" else 0.0
            self.deliveries.append(Delivery(key, accepted=not failing))

        time.sleep(delay)
        body = b'{"error": "flaky"}' if failing else b'{"ok": true}'
        handler.send_response(503 if failing else 200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@dataclass
class Chaos:
    """What the run did to the system, for the report."""

    kills: int = 0
    sigterm_exit: int | None = None
    outage: tuple[datetime, datetime] | None = None  # database clock


def query(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def graphql_batch(system: Tickwork, mutation: str, arg: str, values: list) -> list:
    """Run one mutation per value, as aliases of as few requests as the API takes."""
    ids: list[str] = []
    for start in range(0, len(values), MAX_ALIASES):
        chunk = values[start : start + MAX_ALIASES]
        ids += _graphql_aliases(system, mutation, arg, chunk)
    return ids


def _graphql_aliases(system: Tickwork, mutation: str, arg: str, values: list) -> list:
    kind = "CreateJobInput!" if mutation == "createJob" else "ID!"
    declared = ", ".join(f"$v{i}: {kind}" for i in range(len(values)))
    fields = " ".join(
        f"m{i}: {mutation}({arg}: $v{i}) {{ __typename ... on Job {{ id }} }}"
        for i in range(len(values))
    )
    data = system.graphql(
        f"mutation ({declared}) {{ {fields} }}",
        **{f"v{i}": value for i, value in enumerate(values)},
    )
    results = [data[f"m{i}"] for i in range(len(values))]
    refused = [r for r in results if r["__typename"] != "Job"]
    if refused:
        raise SystemExit(f"{mutation} refused {len(refused)} of them: {refused[0]}")
    return [r["id"] for r in results]


def job_inputs(targets: dict[str, SoakTarget], rng: random.Random) -> list[dict]:
    inputs = []
    for kind, count in JOBS.items():
        for i in range(count):
            spec: dict[str, Any] = {
                "name": f"soak {kind} {i}",
                "schedule": {"intervalSeconds": rng.randint(1, 3)},
                "action": {"webhook": {"url": targets[kind].url(f"/{kind}/{i}")}},
                "maxRetries": 3,
                "timeoutSeconds": 10,
            }
            if kind == "flaky":
                # Quick retries, so that most finish within the run.
                spec["policies"] = {"retryBaseSeconds": 0.5, "retryMaxSeconds": 2}
            inputs.append(spec)
    return inputs


def burst_inputs(target: SoakTarget) -> list[dict]:
    # A fire time already past runs at once.
    return [
        {
            "name": f"soak burst {i}",
            "schedule": {"at": "2000-01-01T00:00:00Z"},
            "action": {"webhook": {"url": target.url(f"/burst/{i}")}},
            "timeoutSeconds": 10,
        }
        for i in range(BURST)
    ]


def plan(seconds: float, rng: random.Random) -> list[tuple[float, str]]:
    """When each disturbance happens, in seconds from the start.

    Kills keep clear of the outage and the SIGTERM, so that each effect can be
    told apart in the logs.
    """
    outage_at, sigterm_at = seconds * 0.5, seconds * 0.8
    events = [(seconds * 0.25, "burst"), (outage_at, "outage"), (sigterm_at, "sigterm")]
    at = KILL_EVERY_SECONDS
    while at < seconds - 5:
        moment = at + rng.uniform(-5, 5)
        clear = (
            not outage_at - 5 <= moment <= outage_at + OUTAGE_SECONDS + 5
            and abs(moment - sigterm_at) > 5
        )
        if clear:
            events.append((moment, "kill"))
        at += KILL_EVERY_SECONDS
    return sorted(events)


class Soak:
    """One soak run: its cluster, processes, targets and disturbances."""

    def __init__(self, minutes: float, seed: int, log_dir: Path) -> None:
        self.seconds = minutes * 60
        self.rng = random.Random(seed)
        self.log_dir = log_dir
        self.cluster = Cluster()
        self.targets = {
            kind: SoakTarget(kind, random.Random(seed + n))
            for n, kind in enumerate(("ok", "flaky", "slow"))
        }
        self.chaos = Chaos()
        self.url = self.cluster.url("tickwork")
        self.system = Tickwork(self.url, log_dir, lease_seconds=str(LEASE_SECONDS))
        self.daemons: list[subprocess.Popen[bytes]] = []
        self.job_ids: list[str] = []

    def run(self) -> int:
        try:
            self.cluster.start()
            query(self.cluster.url(), "CREATE DATABASE tickwork")
            upgrade(self.url)
            self.api = self.system.start("api")
            self.daemons = [self.system.start("daemon") for _ in range(DAEMONS)]
            self.system.wait_ready()
            return self._soak()
        finally:
            # Also after an error: no process may outlive the run.
            self.system.stop()
            for target in self.targets.values():
                target.close()
            self.cluster.remove()

    def _soak(self) -> int:
        started = time.monotonic()
        inputs = job_inputs(self.targets, self.rng)
        self.job_ids = graphql_batch(self.system, "createJob", "input", inputs)
        logger.info("created %s interval jobs", len(self.job_ids))

        actions: dict[str, Callable[[], None]] = {
            "burst": self._burst,
            "kill": self._kill,
            "outage": self._outage,
            "sigterm": self._sigterm,
        }
        for at, event in plan(self.seconds, self.rng):
            time.sleep(max(started + at - time.monotonic(), 0))
            actions[event]()
        time.sleep(max(started + self.seconds - time.monotonic(), 0))

        graphql_batch(self.system, "pauseJob", "id", self.job_ids)
        settled = self._settle()
        codes = dict(zip(self.system.processes, self.system.stop(), strict=True))
        live = [self.api, *self.daemons]
        stop_codes = [codes[process] for process in live]
        return report(
            self,
            duration=time.monotonic() - started,
            settled=settled,
            stop_codes=stop_codes,
        )

    def _burst(self) -> None:
        ids = graphql_batch(
            self.system, "createJob", "input", burst_inputs(self.targets["ok"])
        )
        self.job_ids += ids
        logger.info("created %s one-off jobs", len(ids))

    def _kill(self) -> None:
        victim = self.rng.choice(self.daemons)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        self.daemons.remove(victim)
        self.daemons.append(self.system.start("daemon"))
        self.chaos.kills += 1
        logger.info("killed daemon pid %s, started another", victim.pid)

    def _outage(self) -> None:
        before = query(self.url, "SELECT tickwork_now()")[0][0]
        self.cluster.stop()
        logger.info("PostgreSQL stopped for %s s", OUTAGE_SECONDS)
        time.sleep(OUTAGE_SECONDS)
        self.cluster.start()
        after = query(self.url, "SELECT tickwork_now()")[0][0]
        self.chaos.outage = (before, after)
        logger.info("PostgreSQL started again")

    def _sigterm(self) -> None:
        victim = self.rng.choice(self.daemons)
        victim.send_signal(signal.SIGTERM)
        try:
            self.chaos.sigterm_exit = victim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            victim.kill()
            victim.wait()
        self.daemons.remove(victim)
        self.daemons.append(self.system.start("daemon"))
        logger.info(
            "SIGTERM to daemon pid %s, exit %s", victim.pid, self.chaos.sigterm_exit
        )

    def _settle(self) -> bool:
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            unfinished = query(
                self.url,
                "SELECT count(*) FROM executions "
                "WHERE status IN ('PENDING', 'RUNNING', 'RETRYING')",
            )[0][0]
            if unfinished == 0:
                return True
            time.sleep(0.5)
        return False


def report(
    soak: Soak, *, duration: float, settled: bool, stop_codes: list[int | None]
) -> int:
    """Print the figures; returns the exit status (1 on loss or unexplained
    duplicates)."""
    url = soak.url
    statuses = {
        key: status
        for key, status in query(url, "SELECT id::text, status::text FROM executions")
    }
    deliveries = [d for t in soak.targets.values() for d in t.deliveries]
    seen = Counter(d.key for d in deliveries)
    accepted = Counter(d.key for d in deliveries if d.accepted)

    unfinished = [k for k, s in statuses.items() if s not in FINAL]
    unseen = [k for k, s in statuses.items() if s == "SUCCEEDED" and not accepted[k]]
    lost = len(unfinished) + len(unseen)
    unknown = [k for k in seen if k not in statuses]

    duplicated = {k for k, n in accepted.items() if n > 1}
    abandoned = {
        row[0]
        for row in query(
            url,
            "SELECT DISTINCT execution_id::text FROM attempts "
            "WHERE outcome = 'ABANDONED'",
        )
    }
    spanning: set[str] = set()
    if soak.chaos.outage is not None:
        before, after = soak.chaos.outage
        spanning = {
            row[0]
            for row in query(
                url,
                "SELECT DISTINCT execution_id::text FROM attempts "
                "WHERE started_at <= %s AND finished_at >= %s",
                after,
                before,
            )
        }
    unexplained = duplicated - abandoned - spanning
    retried = {k for k, n in seen.items() if n > 1 and accepted[k] <= 1}

    rows = [
        ("occurrences due (executions)", len(statuses)),
        ("delivered (distinct keys)", len(seen)),
        ("lost", lost),
        ("  never finished", len(unfinished)),
        ("  SUCCEEDED, key never accepted", len(unseen)),
        ("duplicated (key accepted > 1)", len(duplicated)),
        ("  with an ABANDONED attempt", len(duplicated & abandoned)),
        ("  attempt spanning the outage", len(duplicated & spanning)),
        ("  unexplained", len(unexplained)),
        ("  most acceptances of one key", max(accepted.values(), default=0)),
        ("keys resent after a 503 only", len(retried)),
        ("keys no execution has", len(unknown)),
        ("requests received", len(deliveries)),
    ]
    for status, count in sorted(Counter(statuses.values()).items()):
        rows.append((f"status {status}", count))
    rows += [
        ("daemons SIGKILLed", soak.chaos.kills),
        ("SIGTERMed daemon exit code", soak.chaos.sigterm_exit),
        ("exit codes at the end (api, daemons)", stop_codes),
        ("settled before the deadline", settled),
        ("duration (s)", round(duration, 1)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"logs: {soak.log_dir}")

    failed = lost > 0 or bool(unexplained)
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="default 3")
    parser.add_argument("--seed", type=int, default=None, help="default: random")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be more than 0")
    seed = args.seed if args.seed is not None else random.randrange(10**6)

    # Only this run's own progress: not every request or migration step.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    log_dir = Path(tempfile.mkdtemp(prefix="tickwork-soak-"))
    logger.info("soak for %s min, seed %s, logs in %s", args.minutes, seed, log_dir)
    sys.exit(Soak(args.minutes, seed, log_dir).run())


if __name__ == "__main__":
    main()
