"""The migrations are the schema: they build exactly what the models describe."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import shared.models  # noqa: F401 - registers the tables
from shared.db import sqlalchemy_url
from shared.migrate import alembic_config, upgrade


def schema_differences(database_url: str) -> list[object]:
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        return compare_metadata(context, SQLModel.metadata)


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    """Autogenerate finds nothing to change after the migrations ran."""
    assert schema_differences(database_url) == []


def test_migrations_go_down_to_nothing_and_back_up(database_url: str) -> None:
    """Every migration can be undone, and re-applying gives the same schema."""
    command.downgrade(alembic_config(database_url), "base")
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names()) - {"alembic_version"}
    assert tables == set()

    upgrade(database_url)
    assert schema_differences(database_url) == []
