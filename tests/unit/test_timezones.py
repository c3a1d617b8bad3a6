"""Fire times depend on the tz database Tickwork ships, not on the host's."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

CHILD = """
from datetime import datetime, timezone
from shared.schedule import build_schedule, next_fire_time
now = datetime(2026, 12, 3, tzinfo=timezone.utc)
schedule = build_schedule(
    cron_expression="0 9 * * *", timezone="Europe/Berlin", now=now
)
print(next_fire_time(schedule, now).isoformat())
"""


def test_a_host_zone_file_that_lies_is_never_read(tmp_path: Path) -> None:
    """A host tz directory whose Europe/Berlin is really UTC changes nothing:
    09:00 in Berlin stays 08:00 UTC in winter."""
    fake = tmp_path / "zoneinfo"
    (fake / "Europe").mkdir(parents=True)
    utc = resources.files("tzdata.zoneinfo").joinpath("UTC").read_bytes()
    (fake / "Europe" / "Berlin").write_bytes(utc)

    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={"PYTHONTZPATH": str(fake), "TZDIR": str(fake), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "2026-12-03T08:00:00+00:00"
