"""Database URLs, the API's async engine, and raw psycopg connections."""

from __future__ import annotations

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def sqlalchemy_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg 3 driver named explicitly."""
    return _with_scheme(url, "postgresql+psycopg")


def libpq_url(url: str) -> str:
    """The URL as libpq (and so psycopg) understands it."""
    return _with_scheme(url, "postgresql")


def with_database(url: str, name: str) -> str:
    """The same server URL, naming database ``name`` instead."""
    scheme, rest = url.split("://", 1)
    authority, _, path_and_query = rest.partition("/")
    query = path_and_query.partition("?")[2]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


def _with_scheme(url: str, scheme: str) -> str:
    # Only the scheme changes; the rest is kept byte for byte, since urlunsplit
    # would turn an empty host (postgresql:///db?host=/socket/dir) into a path.
    given, separator, rest = url.partition("://")
    if not separator or given.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(
            "not a PostgreSQL URL: expected postgresql://user:password@host/database"
        )
    return f"{scheme}://{rest}"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async SQLAlchemy engine over psycopg 3, checking connections before use."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def connect(url: str, *, autocommit: bool = False) -> psycopg.AsyncConnection:
    """A raw psycopg connection, for LISTEN and the daemon's hot path."""
    return await psycopg.AsyncConnection.connect(
        libpq_url(url), autocommit=autocommit, connect_timeout=5
    )
