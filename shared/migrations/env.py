"""Alembic environment: runs migrations on a plain synchronous psycopg engine."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import shared.models  # noqa: F401 - registers the tables on SQLModel.metadata
from shared.db import sqlalchemy_url

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
