"""Tickwork as real processes, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import httpx

from shared.auth import new_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Tickwork:
    """The API and daemons of one test, as real processes.

    They accept ``token``, a write token given as TICKWORK_BOOTSTRAP_TOKEN;
    ``headers`` carry it. Whatever a test leaves running is stopped when the
    test ends (:func:`left_running`), also when it fails half way.
    """

    live: ClassVar[weakref.WeakSet[Tickwork]] = weakref.WeakSet()

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        Tickwork.live.add(self)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = new_token()
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.env = {
            **os.environ,
            "TICKWORK_DATABASE_URL": database_url,
            "TICKWORK_BOOTSTRAP_TOKEN": self.token,
            "TICKWORK_PORT": str(self.port),
            "TICKWORK_ENV": "development",
            "TICKWORK_ALLOW_PRIVATE_TARGETS": "true",
            "TICKWORK_LEASE_SECONDS": "5",
            "TICKWORK_HEARTBEAT_SECONDS": "1",
            "TICKWORK_SHUTDOWN_GRACE_SECONDS": "2",
            **{f"TICKWORK_{name.upper()}": value for name, value in settings.items()},
        }
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, command: str) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{command}-{len(self.processes)}.log"
        # The child keeps its own copy of the log's file descriptor.
        with path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run `tickwork ARGS` to the end, with this system's environment."""
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for /readyz to answer 200; an API that exited fails at once,
        quoting its log."""
        # Generous: on two busy cores, importing the API alone can take 10 s.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_api_alive()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the API was not ready within {timeout} s; see logs")

    def _check_api_alive(self) -> None:
        """Fail if the API started last has exited (a test may stop an earlier
        one on purpose and start another)."""
        apis = [i for i, p in enumerate(self.processes) if p.args[-1] == "api"]
        if not apis:
            return
        process = self.processes[apis[-1]]
        if process.poll() is not None:
            log = (self.log_dir / f"api-{apis[-1]}.log").read_text(errors="replace")
            raise AssertionError(
                f"the API exited with {process.returncode}:\n{log[-2000:]}"
            )

    def graphql(self, query: str, **variables: object) -> dict[str, object]:
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def stop(self) -> list[int | None]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=15))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes


@contextmanager
def left_running() -> Iterator[None]:
    """Stop, when the block ends, the processes of every Tickwork made in it
    that still runs some; those made before (a shared fixture's) are left."""
    before = set(Tickwork.live)
    try:
        yield
    finally:
        for system in set(Tickwork.live) - before:
            if any(process.poll() is None for process in system.processes):
                system.stop()


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
