"""Fixtures shared by every test layer: a real PostgreSQL, a fresh database per test.

PostgreSQL is the embedded server (started once per test run in a temporary
directory) unless TICKWORK_TEST_DATABASE_URL names a server to use instead. Each
test gets its own database, cloned from a template that the migrations built
once, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from shared.db import libpq_url, with_database
from shared.migrate import upgrade
from tests.support.processes import left_running
from tests.support.target import Target

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

TEMPLATE = "tickwork_test_template"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a maintenance database on the server the tests use."""
    configured = os.environ.get("TICKWORK_TEST_DATABASE_URL")
    if configured:
        yield libpq_url(configured)
        return

    from shared.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="tickwork-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pgdata")
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> str:
    """A database migrated to head, cloned by every test."""
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    upgrade(with_database(postgres_server_url, TEMPLATE))
    return TEMPLATE


@pytest.fixture
def database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own, dropped afterwards."""
    name = f"tickwork_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    url = with_database(postgres_server_url, name)
    try:
        yield url
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def target() -> Iterator[Target]:
    """A real HTTP server on loopback that records what it receives."""
    with Target() as server:
        yield server


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """An autocommit connection to the test's database, for setup and asserts."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True
    ) as conn:
        yield conn


@pytest.fixture(autouse=True)
def _no_processes_left() -> Iterator[None]:
    """A test that fails half way must not leave tickwork processes running."""
    with left_running():
        yield
