"""JSON logs: one object per line, with the run line's fields beside the message."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.queue import Claim, Outcome
from daemon.worker import _log_finished
from shared.logs import JsonFormatter, configure_logging

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the daemon's worker logger writes, formatted as JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    worker_logger = logging.getLogger("daemon.worker")
    worker_logger.addHandler(handler)
    level = worker_logger.level
    worker_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        worker_logger.removeHandler(handler)
        worker_logger.setLevel(level)


def test_a_run_finished_line_carries_its_ids_and_attempt_as_fields(
    json_lines: io.StringIO,
) -> None:
    """The daemon's run line parses as JSON with job_id, execution_id and attempt
    as fields, and keeps the same values in its text message."""
    outcome = _outcome(status="RETRYING", http_status=503, error="HTTP 503")
    claim = outcome.claim

    _log_finished(outcome)

    [line] = json_lines.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "daemon.worker"
    assert entry["job_id"] == str(claim.job_id)
    assert entry["execution_id"] == str(claim.execution_id)
    assert entry["attempt"] == 2
    assert entry["status"] == "RETRYING"
    assert entry["http_status"] == 503
    assert entry["duration_ms"] == 1250
    assert entry["error"] == "HTTP 503"
    assert entry["message"].startswith(
        f"run finished: execution_id={claim.execution_id} job_id={claim.job_id} "
        "attempt=2 status=RETRYING"
    )
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None


def test_exceptions_and_values_json_cannot_hold_are_written_as_text() -> None:
    """A UUID field becomes its text, and a logged exception its traceback."""
    record_id = uuid.uuid4()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info()
        )
    record.execution_id = record_id

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "failed: x"
    assert entry["execution_id"] == str(record_id)
    assert "RuntimeError: boom" in entry["exception"]


def test_the_environment_chooses_json_for_a_whole_process() -> None:
    """With TICKWORK_LOG_FORMAT=json, a process that calls configure_logging
    writes JSON lines to stderr."""
    script = (
        "import logging\n"
        "from shared.logs import configure_logging\n"
        "configure_logging()\n"
        "logging.getLogger('probe').info('hello %s', 'there', extra={'job_id': 'j'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"TICKWORK_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    entry = json.loads(done.stderr)
    assert (entry["logger"], entry["message"], entry["job_id"]) == (
        "probe",
        "hello there",
        "j",
    )


def test_an_unknown_log_format_is_refused_naming_the_choices() -> None:
    """A typo in TICKWORK_LOG_FORMAT stops the start rather than logging in a
    format a log pipeline cannot read."""
    with pytest.raises(ValueError, match="text, json"):
        configure_logging("yaml")


def _outcome(*, status: str, http_status: int | None, error: str | None) -> Outcome:
    claim = Claim(
        execution_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        job_name="report",
        attempt=2,
        failures=1,
        fence=3,
        trigger="SCHEDULE",
        scheduled_for=datetime(2026, 12, 4, 2, tzinfo=UTC),
        started_at=datetime(2026, 12, 4, 2, 0, 1, tzinfo=UTC),
        action={"kind": "webhook", "url": "https://x.example/hook"},
        payload=None,
        max_retries=3,
        timeout_seconds=10,
    )
    return Outcome(
        claim=claim,
        failed=True,
        status=status,
        retry_delay=4.0,
        duration=1.25,
        http_status=http_status,
        result=None,
        error=error,
        excerpt=None,
    )
