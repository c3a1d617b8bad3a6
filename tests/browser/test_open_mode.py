"""With authentication off, as under `tickwork up`, the console says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.processes import Tickwork


@pytest.fixture(scope="module")
def open_api(
    tickwork: Tickwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tickwork]:
    """A second API on the shared database, run open the way `tickwork up` runs
    its API (`python -m api` with TICKWORK_AUTH=off, on loopback)."""
    system = Tickwork(
        tickwork.env["TICKWORK_DATABASE_URL"],
        Path(tmp_path_factory.mktemp("open-api-logs")),
        auth="off",
    )
    with (system.log_dir / "api.log").open("wb") as log:
        system.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "api"],
                env=system.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        system.wait_ready(timeout=60)
        yield system
    finally:
        system.stop()


def test_with_authentication_off_a_banner_says_so(
    page: Any, open_api: Tickwork
) -> None:
    """No sign-in is asked for, and a banner says anyone may change jobs.

    The header says no token is needed, and offers no Sign out: there is no
    session to end.
    """
    page.goto(open_api.base_url + "/")
    banner = page.locator("#auth-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Authentication is off — local development")
    expect(page.locator("#sign-in")).to_be_hidden()
    expect(page.locator("#session-name")).to_have_text(
        "Open: no token needed (tickwork up on this machine)"
    )
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    test_job = page.get_by_role("button", name="Run test job now", exact=True)
    expect(test_job).to_have_attribute("aria-disabled", "false")
