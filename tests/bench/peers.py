"""Peers on the same PostgreSQL, in the same run: pgqueuer and procrastinate.

Their benchmark scripts live in ``../shared/bench-peers`` and run as they are,
in their own virtualenv (``$BENCH_ROOT/venv``, created from its
``requirements.txt`` the way its ``run_all.sh`` does when missing), pointed at
this session's server through PGHOST/PGPORT/PGUSER. Each throughput run
enqueues N jobs in bulk, starts one worker process and counts jobs per second
from the worker's start until the database shows every job done. Handlers:
``noop``; ``webhook`` (a POST per job with one shared httpx client) and
``webhook-aiohttp`` (the same with aiohttp), each to the scripts' own sink.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.bench.harness import RESULTS, Figure, Session, free_port

logger = logging.getLogger(__name__)

PEERS_DIR = Path(__file__).resolve().parents[3] / "shared" / "bench-peers"
BENCH_ROOT = Path(os.environ.get("BENCH_ROOT", "/tmp/bench-peers"))
VENV_PYTHON = BENCH_ROOT / "venv" / "bin" / "python"

# (script, concurrency, handler, jobs in a full run, jobs in a quick run). The
# concurrency is each library's best in the peers' own measurements; the job
# counts keep every run near ten seconds.
CONFIGURATIONS = (
    ("pgqueuer", "default", "noop", 10_000, 2000),
    ("pgqueuer", "default", "webhook-aiohttp", 10_000, 2000),
    ("pgqueuer", "default", "webhook", 2000, 300),
    ("procrastinate", "20", "noop", 2000, 300),
    ("procrastinate", "20", "webhook-aiohttp", 2000, 300),
    ("procrastinate", "20", "webhook", 1500, 300),
)


def run(session: Session) -> dict[str, Any]:
    if not PEERS_DIR.is_dir():
        raise RuntimeError(f"the peers' benchmarks are not at {PEERS_DIR}")
    _ensure_venv()
    host, port = session.server.socket_host_and_port()
    results_dir = RESULTS / "peers"
    results_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # libpq and asyncpg both read a percent-encoded socket directory as host.
        "PGHOST": quote(host, safe="") if host.startswith("/") else host,
        "PGPORT": port,
        "PGUSER": "postgres",
        "BENCH_RESULTS": str(results_dir),
        "BENCH_MAX_WAIT_S": "60",
    }
    figures: dict[str, Any] = {}
    rates = {config: Figure() for config in CONFIGURATIONS}
    cpu = {config: Figure() for config in CONFIGURATIONS}
    for _ in range(session.reps):
        for config in CONFIGURATIONS:
            rate, cpu_ms = _once(env, *config, quick_run=session.quick)
            rates[config].add(rate)
            cpu[config].add(cpu_ms)
    for config, rate in rates.items():
        library, concurrency, handler, full, quick = config
        figures[f"{library} c={concurrency} {handler}"] = {
            "library": library,
            "concurrency": concurrency,
            "handler": handler,
            "jobs": quick if session.quick else full,
            "per_s": rate.as_json(),
            "worker_cpu_ms_per_job": cpu[config].as_json(),
        }
    figures["versions"] = _versions()
    return figures


def _once(
    env: dict[str, str],
    library: str,
    concurrency: str,
    handler: str,
    full: int,
    quick: int,
    *,
    quick_run: bool,
) -> tuple[float, float]:
    jobs = quick if quick_run else full
    command = [
        str(VENV_PYTHON),
        f"bench_{library}.py",
        "throughput",
        "--concurrency",
        concurrency,
        "--n",
        str(jobs),
        "--handler",
        handler,
    ]
    completed = subprocess.run(
        command,
        cwd=PEERS_DIR,
        env={**env, "BENCH_SINK_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(command[1:])} failed: {completed.stderr[-2000:]}"
        )
    worker = json.loads(lines[-1])["worker"]
    if "jobs_per_s" not in worker:
        raise RuntimeError(f"{' '.join(command[1:])}: no result: {worker}")
    if worker.get("timed_out"):
        logger.warning("%s stopped at its time cap", " ".join(command[1:]))
    # The worker reports its CPU use as a share of its run; per job it compares
    # with the daemon's CPU per execution, which the machine's load moves less.
    seconds = worker["t_all_handled"] - worker["t0"]
    cpu_ms = worker["worker_cpu_pct"] / 100 * seconds * 1000 / worker["handled"]
    return worker["jobs_per_s"], cpu_ms


def _ensure_venv() -> None:
    if VENV_PYTHON.exists():
        return
    logger.info("creating the peers' virtualenv in %s", BENCH_ROOT / "venv")
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(BENCH_ROOT / "venv")], check=True)
    subprocess.run(
        [
            str(BENCH_ROOT / "venv" / "bin" / "pip"),
            "install",
            "-q",
            "-r",
            str(PEERS_DIR / "requirements.txt"),
        ],
        check=True,
    )


def _versions() -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) "
        "for n in ('pgqueuer', 'procrastinate', 'httpx', 'aiohttp', 'asyncpg')}))"
    )
    output = subprocess.run(
        [str(VENV_PYTHON), "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)
