"""Processes refuse to start against a schema that is not at this code's head."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from shared.db import with_database
from shared.migrate import MIGRATIONS, alembic_config
from shared.schema_version import (
    SchemaNotMigratedError,
    SchemaTooNewError,
    SchemaTooOldError,
    check_schema,
    known_revisions,
)

EVERY, HEADS = known_revisions()
[HEAD] = HEADS
PREVIOUS = (
    ScriptDirectory.from_config(alembic_config("")).get_revision(HEAD).down_revision
)
# No Tickwork will ever ship this revision.
FUTURE = "9999_from_a_newer_tickwork"


@pytest.fixture
def empty_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database that no migration ever touched, dropped afterwards."""
    name = f"tickwork_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_server_url, name)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stamp_by_hand(database_url: str, revision: str) -> None:
    """What a newer Tickwork's migration leaves behind: a revision unknown here."""
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (revision,))


def test_known_revisions_are_the_shipped_migrations_with_one_head() -> None:
    """known_revisions() lists every file in versions/ and a single head."""
    shipped = {path.name.split("_")[0] for path in MIGRATIONS.glob("versions/*.py")}

    assert shipped == EVERY
    assert len(HEADS) == 1
    assert PREVIOUS in EVERY


async def test_a_database_at_head_passes(database_url: str) -> None:
    """A freshly migrated database raises nothing."""
    await check_schema(database_url)


async def test_a_database_never_migrated_asks_for_tickwork_migrate(
    empty_database_url: str,
) -> None:
    """Without an alembic_version table, the error says to run tickwork migrate."""
    with pytest.raises(SchemaNotMigratedError) as raised:
        await check_schema(empty_database_url)

    assert str(raised.value) == (
        f"the database is not migrated (this Tickwork needs revision {HEAD}): "
        "run `tickwork migrate`"
    )


async def test_a_database_downgraded_to_base_counts_as_not_migrated(
    database_url: str,
) -> None:
    """After downgrade to base the version table is empty: not migrated."""
    command.downgrade(alembic_config(database_url), "base")

    with pytest.raises(SchemaNotMigratedError, match="run `tickwork migrate`"):
        await check_schema(database_url)


async def test_a_newer_unknown_revision_asks_to_upgrade_tickwork(
    database_url: str,
) -> None:
    """A revision stamped by a newer Tickwork is refused, naming both revisions."""
    _stamp_by_hand(database_url, FUTURE)

    with pytest.raises(SchemaTooNewError) as raised:
        await check_schema(database_url)

    assert str(raised.value) == (
        f"the database schema (revision {FUTURE}) is newer than this Tickwork "
        f"knows (head {HEAD}): upgrade Tickwork"
    )


async def test_the_previous_revision_is_refused_as_too_old(database_url: str) -> None:
    """One revision back, the code's queries would miss what head added."""
    command.downgrade(alembic_config(database_url), PREVIOUS)

    with pytest.raises(SchemaTooOldError) as raised:
        await check_schema(database_url)

    assert str(raised.value) == (
        f"the database schema (revision {PREVIOUS}) is older than this Tickwork "
        f"needs (head {HEAD}): run `tickwork migrate`"
    )


async def test_after_migrating_an_old_database_the_check_passes(
    database_url: str,
) -> None:
    """Downgraded to 0001 and upgraded again, the database is accepted."""
    command.downgrade(alembic_config(database_url), "0001")
    command.upgrade(alembic_config(database_url), "head")

    await check_schema(database_url)


async def test_an_unreachable_database_raises_the_driver_error(
    postgres_server_url: str,
) -> None:
    """A connection failure is not a schema error: it stays OperationalError, which
    the processes' reconnect policies retry."""
    missing = with_database(postgres_server_url, f"missing_{uuid.uuid4().hex[:8]}")

    with pytest.raises(psycopg.OperationalError):
        await check_schema(missing)
