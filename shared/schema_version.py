"""Which database schema this code runs against, checked when a process starts.

The rule: the API and the daemon start only against the schema at this code's
head revision. Anything else stops them with a message that says what to do:

* no revision at all: the database is not migrated ("run `tickwork migrate`");
* a revision this code does not know: the schema is newer than the code
  ("upgrade Tickwork");
* a known revision other than head: the schema is older ("run `tickwork
  migrate`").

Upgrades expand, then contract. A migration that processes of the previous
version must survive only adds (nullable columns, indexes, functions), as 0003
does. ``tickwork migrate`` runs first, and processes of the previous version
that are already running keep working, since nothing they read went away; the
check only runs at start. New processes then start against head. Removing
anything waits for a later migration, once no process of the previous version
is left.

The previous revision is not accepted as well: code at head reads what the
head migration added (the API loads every column of a job, the claim query
reads the per-job retry backoff), so against the previous schema every job read
would fail later with an undefined column, after the check had passed.
"""

from __future__ import annotations

from alembic.script import ScriptDirectory

from shared.db import connect
from shared.errors import TickworkError
from shared.migrate import alembic_config

HAS_VERSION_TABLE = "SELECT to_regclass('alembic_version') IS NOT NULL"
VERSIONS = "SELECT version_num FROM alembic_version ORDER BY version_num"


class SchemaVersionError(TickworkError):
    """The database's schema is not the one this code runs against."""


class SchemaNotMigratedError(SchemaVersionError):
    """The database has no schema revision: it was never migrated."""


class SchemaTooNewError(SchemaVersionError):
    """The database's schema revision is one this code does not know."""


class SchemaTooOldError(SchemaVersionError):
    """The database's schema revision is known, but older than this code's head."""


def known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """Every revision this code ships, and its head revisions (one, normally)."""
    script = ScriptDirectory.from_config(alembic_config(""))
    every = frozenset(revision.revision for revision in script.walk_revisions())
    return every, frozenset(script.get_heads())


async def check_schema(database_url: str) -> None:
    """Raise a SchemaVersionError unless the database's schema is at head.

    Only reads. A database that cannot be reached raises psycopg's
    OperationalError unchanged, so that callers' reconnect policies retry it.
    """
    async with await connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(HAS_VERSION_TABLE)
        [has_table] = await cur.fetchone() or (False,)
        found: list[str] = []
        if has_table:
            cur = await conn.execute(VERSIONS)
            found = [row[0] for row in await cur.fetchall()]

    every, heads = known_revisions()
    head = ", ".join(sorted(heads))
    if not found:
        raise SchemaNotMigratedError(
            f"the database is not migrated (this Tickwork needs revision {head}): "
            "run `tickwork migrate`"
        )
    revision = ", ".join(found)
    if not set(found) <= every:
        raise SchemaTooNewError(
            f"the database schema (revision {revision}) is newer than this "
            f"Tickwork knows (head {head}): upgrade Tickwork"
        )
    if set(found) != heads:
        raise SchemaTooOldError(
            f"the database schema (revision {revision}) is older than this "
            f"Tickwork needs (head {head}): run `tickwork migrate`"
        )
