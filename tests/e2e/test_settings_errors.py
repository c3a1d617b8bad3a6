"""End to end: every `tickwork` command refuses bad settings in one line each.

The real CLI runs as a subprocess, as an operator runs it. Settings are read
before anything starts, so no database is needed: the URL given points nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NOT_AN_INTEGER = (
    "TICKWORK_PORT: Input should be a valid integer, "
    "unable to parse string as an integer"
)
TOO_FEW = "TICKWORK_CONCURRENCY: Input should be greater than or equal to 1"
SHORT_TOKEN = (
    "TICKWORK_BOOTSTRAP_TOKEN: must be at least 32 characters, without "
    "surrounding spaces (`openssl rand -hex 32` makes one)"
)


def tickwork(
    tmp_path: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess:
    """Run `tickwork ARGS` with only these TICKWORK_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}
    env["TICKWORK_DATABASE_URL"] = "postgresql://127.0.0.1:1/nowhere"
    env["TICKWORK_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "settings", "lines"),
    [
        (["api"], {"TICKWORK_PORT": "notaport"}, [f"tickwork api: {NOT_AN_INTEGER}"]),
        (["daemon"], {"TICKWORK_CONCURRENCY": "0"}, [f"tickwork daemon: {TOO_FEW}"]),
        (
            ["daemon", "--check"],
            {"TICKWORK_CONCURRENCY": "0"},
            [f"tickwork daemon: {TOO_FEW}"],
        ),
        (
            ["up"],
            {"TICKWORK_BOOTSTRAP_TOKEN": "tw_short"},
            [f"tickwork up: {SHORT_TOKEN}"],
        ),
        (
            ["migrate"],
            {"TICKWORK_ENV": "staging"},
            [
                "tickwork migrate: TICKWORK_ENV: Input should be "
                "'development' or 'production'"
            ],
        ),
        (
            ["token", "list"],
            {"TICKWORK_PORT": "notaport", "TICKWORK_CONCURRENCY": "0"},
            [f"tickwork token: {NOT_AN_INTEGER}", f"tickwork token: {TOO_FEW}"],
        ),
    ],
)
def test_a_bad_setting_is_named_by_its_variable_in_one_line_and_exits_2(
    tmp_path: Path, args: list[str], settings: dict[str, str], lines: list[str]
) -> None:
    done = tickwork(tmp_path, *args, **settings)

    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == lines
    assert done.stdout == ""


def test_a_refused_value_is_not_repeated_it_may_be_a_secret(tmp_path: Path) -> None:
    done = tickwork(tmp_path, "api", TICKWORK_BOOTSTRAP_TOKEN="tw_not-long-enough")

    assert done.returncode == 2
    assert "tw_not-long-enough" not in done.stderr
