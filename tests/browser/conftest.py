"""The web console in a real browser: Debian's Chromium driven by Playwright.

One Tickwork (API and daemon processes on a database of its own), one local
webhook target and one browser serve every browser test, so tests tell their
jobs apart by unique names.
Every page fails its test on a console error, an uncaught exception, or a
request that would leave this machine.

Without /usr/bin/chromium the tests are skipped on a developer machine, and
the summary says so; with CI=true a missing browser fails them instead.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from cryptography.fernet import Fernet

from shared.db import with_database
from tests.browser.helpers import sign_in
from tests.support.processes import Tickwork
from tests.support.target import Target

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TICKWORK_CHROMIUM", "/usr/bin/chromium"))
WEB_DIST = ROOT / "web" / "dist" / "index.html"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

# What the terminal summary reports: the versions used, or why none ran.
_REPORT: dict[str, str] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    """Fail under CI, where a browser is part of the setup; skip elsewhere."""
    if _in_ci():
        _REPORT["failed"] = reason
        pytest.fail(f"browser tests cannot run under CI=true: {reason}", pytrace=False)
    _REPORT["skipped"] = reason
    pytest.skip(f"browser tests skipped: {reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "versions" in _REPORT:
        terminalreporter.write_line(f"browser tests: {_REPORT['versions']}")
    elif "skipped" in _REPORT:
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED: {_REPORT['skipped']}", yellow=True, bold=True
        )
    elif "failed" in _REPORT:
        terminalreporter.write_line(
            f"BROWSER TESTS FAILED TO START: {_REPORT['failed']}", red=True, bold=True
        )


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium, launched once for the browser tests. Playwright's sync
    API runs an event loop on this thread while it is open, so it closes before
    the asyncio tests run."""
    if not CHROMIUM.exists():
        _unavailable(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, "
            "or set TICKWORK_CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (make install)")
    if not WEB_DIST.exists():
        pytest.fail("web/dist is not built: run make install", pytrace=False)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        versions = (
            f"Chromium {launched.version} ({CHROMIUM}), "
            f"Playwright {importlib.metadata.version('playwright')}"
        )
        _REPORT["versions"] = versions
        print(f"\nbrowser tests use {versions}")
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def fresh_database(server_url: str, template: str) -> Iterator[str]:
    """A new migrated database, dropped afterwards."""
    name = f"tickwork_browser_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_tickwork(database_url: str, log_dir: Path) -> Iterator[Tickwork]:
    """The API and one daemon as real processes, until the block ends."""
    system = Tickwork(
        database_url,
        log_dir,
        retry_base_seconds="0.2",
        retry_max_seconds="0.5",
        # Secret headers and signing secrets need a key to be stored.
        secret_key=Fernet.generate_key().decode(),
    )
    system.start("api")
    system.start("daemon")
    try:
        # Generous: on a busy two-core machine Python alone takes seconds to start.
        system.wait_ready(timeout=60)
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="package")
def target() -> Iterator[Target]:
    """A local webhook target shared by the browser tests."""
    with Target() as server:
        yield server


@pytest.fixture(scope="package")
def tickwork(
    browser: Any,
    postgres_server_url: str,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Tickwork]:
    """One Tickwork shared by the browser tests."""
    with (
        fresh_database(postgres_server_url, template_database) as url,
        running_tickwork(url, tmp_path_factory.mktemp("tickwork-logs")) as system,
    ):
        yield system


class PageProblems:
    """Console errors, page errors and foreign requests seen by one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        # Console errors a test expects (say, the 401 of a refused token).
        self.expected: list[re.Pattern[str]] = []

    def expect_console_error(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = f"{message.text} ({message.location.get('url', '')})"
        if not any(pattern.search(text) for pattern in self.expected):
            self.errors.append(f"console error: {text}")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"page error: {error}")


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


def _keep_local(problems: PageProblems) -> Any:
    def route(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            problems.foreign.append(url)
            route.abort()

    return route


@pytest.fixture
def context(browser: Any, problems: PageProblems) -> Iterator[Any]:
    """A fresh browser profile (no cookies) whose requests must stay local."""
    profile = browser.new_context(viewport={"width": 1280, "height": 900})
    profile.route("**/*", _keep_local(problems))
    try:
        yield profile
    finally:
        profile.close()


@pytest.fixture
def page(context: Any, problems: PageProblems) -> Iterator[Any]:
    """A page that fails the test on console errors, page errors and foreign
    requests."""
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.on("console", problems.console)
    tab.on("pageerror", problems.page_error)
    yield tab
    assert problems.foreign == [], f"requests left this machine: {problems.foreign}"
    assert problems.errors == [], "\n".join(problems.errors)


@pytest.fixture
def console(page: Any, tickwork: Tickwork) -> Any:
    """The console, signed in with a write token, its jobs loaded."""
    sign_in(page, tickwork)
    page.goto(tickwork.base_url + "/")
    page.wait_for_selector("#live[data-state='live']")
    page.wait_for_function(
        "performance.getEntriesByName('tickwork:first-jobs-shown').length > 0"
    )
    return page
