"""What every resolver can reach: the database, live updates and batch loaders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from api import store
from api.auth import (
    SIGN_IN_HINT,
    UNAUTHENTICATED,
    Authenticator,
    AuthRefused,
    Principal,
)
from api.broadcaster import Broadcaster
from shared.errors import DatabaseUnavailableError
from shared.models import Attempt, Execution
from shared.settings import Settings

NOW = "now"
# SQLSTATE classes and codes that mean the server went away, not the query failed:
# connection exceptions, and the server shutting down or starting up.
LOST_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")


@dataclass
class ApiState:
    """The process-wide resources, created by the app's lifespan."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broadcaster: Broadcaster
    auth: Authenticator


class Context(BaseContext):
    """One per HTTP request, or one per WebSocket connection."""

    def __init__(self, state: ApiState, *, cache: bool) -> None:
        super().__init__()
        self.state = state
        self.sessions = state.sessions
        self.broadcaster = state.broadcaster
        # Who is calling: set from the request for HTTP, by on_ws_connect for a
        # WebSocket. None means nobody, and no operation runs (api/auth.py).
        self.principal: Principal | None = None
        # A WebSocket's token, checked again before each of its operations so
        # that a revocation also reaches connections that are already open.
        self.credential: str | None = None
        # A WebSocket context lives as long as the connection, so its loaders
        # only batch and never cache: a cached row would go stale.
        self.last_execution = DataLoader(self._load_last_executions, cache=cache)
        self.attempts = DataLoader(self._load_attempts, cache=cache)
        # The database clock, read once for every resolver that asks together
        # (and, on HTTP, once per request): load(NOW).
        self.clock = DataLoader(self._load_clock, cache=cache)

    @property
    def scope(self) -> str:
        """What the caller may do: "read" or "write"."""
        return self.principal.scope.value if self.principal else "read"

    async def recheck(self) -> Principal | None:
        """The caller, checked again where a connection outlives one request."""
        if self.credential is not None:
            self.principal = await self.state.auth.principal_for(self.credential)
        return self.principal

    async def _load_last_executions(
        self, job_ids: Sequence[uuid.UUID]
    ) -> list[Execution | None]:
        async with self.sessions() as session:
            found = await store.last_executions(session, job_ids)
        return [found.get(job_id) for job_id in job_ids]

    async def _load_clock(self, keys: Sequence[str]) -> list[datetime]:
        async with self.sessions() as session:
            now = await store.db_now(session)
        return [now for _ in keys]

    async def _load_attempts(
        self, execution_ids: Sequence[uuid.UUID]
    ) -> list[list[Attempt]]:
        async with self.sessions() as session:
            found = await store.attempts_of(session, execution_ids)
        return [found.get(execution_id, []) for execution_id in execution_ids]


async def get_context(connection: HTTPConnection) -> Context:
    """FastAPI dependency building the context; the app state holds the resources."""
    state: ApiState = connection.app.state.tickwork
    if isinstance(connection, WebSocket):
        # The token comes later, in connection_init (router.on_ws_connect).
        return Context(state, cache=False)
    context = Context(state, cache=True)
    context.principal = await _http_principal(state.auth, connection)
    return context


async def _http_principal(
    auth: Authenticator, request: HTTPConnection
) -> Principal | None:
    """The caller of an HTTP request, or AuthRefused (401, 403, 503).

    A GET without a query runs no operation (it asks for GraphiQL, which must
    load before anyone signs in), so it goes on without a principal.
    """
    runs_nothing = request.scope["method"] == "GET" and not request.query_params.get(
        "query"
    )
    try:
        principal = await auth.from_request(request)
    except AuthRefused:
        if runs_nothing:
            return None
        raise
    if principal is None and not runs_nothing:
        raise AuthRefused(
            401, UNAUTHENTICATED, f"authentication required: {SIGN_IN_HINT}"
        )
    return principal


def is_lost_connection(exc: BaseException) -> bool:
    """Whether ``exc``, or what caused it, says the database could not be reached."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if _means_lost_connection(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _means_lost_connection(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailableError | psycopg.InterfaceError):
        return True
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc.orig, BaseException) and _means_lost_connection(exc.orig)
    if isinstance(exc, psycopg.OperationalError):
        # A query cancelled by a timeout is an OperationalError too, with its own
        # SQLSTATE; a failed connection attempt has none.
        state = exc.sqlstate
        return state is None or state.startswith(LOST_CONNECTION_STATES)
    return False
