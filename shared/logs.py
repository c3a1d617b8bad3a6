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
    # httpx logs every request at INFO; runs log their own summary.
    logging.getLogger("httpx").setLevel(logging.WARNING)
