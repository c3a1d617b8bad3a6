"""Database URLs, the API's async engine, and raw psycopg connections."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def sqlalchemy_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg 3 driver named explicitly."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def libpq_url(url: str) -> str:
    """The URL as libpq (and so psycopg) understands it."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def with_database(url: str, name: str) -> str:
    """The same server URL, naming database ``name`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


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
