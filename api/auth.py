"""Who is calling, and what they may do.

Every GraphQL operation needs a principal: a stored API token, the bootstrap
token from ``TICKWORK_BOOTSTRAP_TOKEN``, or, only under ``tickwork up`` on a
loopback address, the "open" principal given to callers on this machine. A
token comes as ``Authorization: Bearer <token>``, in the ``tickwork_session``
cookie that ``POST /auth/session`` sets, or in a WebSocket's
``connection_init`` payload. Read tokens query and subscribe; mutations need a
write token, which :class:`Authorization` checks for every mutation at once.

The session cookie holds the token itself (HttpOnly, SameSite=Strict), so
revoking a token also ends its sessions. Requests that the cookie
authenticates and that change state must come from the API's own origin
(checked by Origin, else Referer), which stops cross-site request forgery.

In open mode every request must also be addressed to this machine by name
(:class:`LoopbackHostOnly`): a page elsewhere cannot drive the open API by
making its own host name resolve to 127.0.0.1.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from graphql import GraphQLError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from shared.auth import auth_is_open, hash_token, is_loopback_host
from shared.errors import TickworkError
from shared.models import ApiToken, TokenScope
from shared.settings import Settings

logger = logging.getLogger(__name__)

SESSION_COOKIE = "tickwork_session"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
UNAVAILABLE = "DATABASE_UNAVAILABLE"
# A token's last use is written at most this often per API process.
LAST_USED_INTERVAL_SECONDS = 60.0
# Longer than any token we make or accept: not worth a lookup.
MAX_TOKEN_LENGTH = 512
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
# A Host header: a name or IPv4 address, or an IPv6 address in brackets, and
# an optional port. Anything else (user info, paths) is not a plain Host.
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:@/\s]+)(:[0-9]{1,5})?")

SIGN_IN_HINT = (
    "send Authorization: Bearer <token>, or sign in on the page; "
    "`tickwork token create` makes a token"
)


class AuthRefused(TickworkError):
    """A request that cannot go on: its HTTP status, GraphQL code and reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code})


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the audit trail records ``kind`` and ``name``."""

    # token, bootstrap or open (see shared.models.AuditEvent.actor_kind).
    kind: str
    name: str
    scope: TokenScope
    token_id: uuid.UUID | None = None


OPEN = Principal("open", "open", TokenScope.WRITE)
BOOTSTRAP = Principal("bootstrap", "bootstrap", TokenScope.WRITE)


def is_local_caller(connection: HTTPConnection) -> bool:
    """Whether the caller is on this machine and did not come through a proxy.

    Open mode serves only such callers: a reverse proxy on the same machine
    would otherwise open the API to whoever reaches the proxy.
    """
    if any(name in connection.headers for name in FORWARDED_HEADERS):
        return False
    client = connection.client
    return client is not None and is_loopback_host(client.host)


def is_loopback_host_header(value: str | None) -> bool:
    """Whether a Host header names this machine: localhost, 127.0.0.0/8 or
    [::1], with any port."""
    match = HOST_HEADER.fullmatch(value or "")
    return match is not None and is_loopback_host(match.group(1))


class LoopbackHostOnly:
    """Refuses every request and WebSocket handshake not addressed to a
    loopback name or address; the app runs it only while authentication is off.

    Checking the caller's address is not enough in open mode: a page on
    another site can make its own host name resolve to 127.0.0.1 (DNS
    rebinding), and the browser then sends it from this machine, with that
    site's name in Host. Tokens protect the API when authentication is on, and
    proxies in front of it send their own names, so Host is left alone then.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = HTTPConnection(scope).headers.get("host")
        if is_loopback_host_header(host):
            await self.app(scope, receive, send)
            return

        refused = f"Host {host!r}" if host else "a request without a Host header"
        message = (
            f"{refused} refused: authentication is off, so this server answers "
            "only requests addressed to localhost, 127.0.0.1 or [::1]"
        )
        logger.warning("request refused, not a loopback Host: host=%r", host)
        if scope["type"] == "http":
            prefix = ""
        elif "websocket.http.response" in scope.get("extensions", {}):
            prefix = "websocket."  # the server can refuse with a body
        else:
            # Closing before accepting refuses the handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": f"{prefix}http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": f"{prefix}http.response.body", "body": body})


def own_origin(connection: HTTPConnection) -> str | None:
    """The origin this request was addressed to, from its scheme and Host."""
    host = connection.headers.get("host")
    if not host:
        return None
    scheme = "https" if connection.url.scheme in ("https", "wss") else "http"
    return normalize_origin(f"{scheme}://{host}")


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` as browsers send it, or None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def check_same_origin(request: Request) -> None:
    """Refuse (403) a request whose Origin, or else Referer, is not our own.

    Browsers send Origin on every POST and DELETE from a page, so our page and
    GraphiQL pass without doing anything; a form or script on another site
    cannot make a browser send our origin.
    """
    expected = own_origin(request)
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        claimed = normalize_origin(referer) if referer else None
        what = "Referer"
    else:
        claimed = normalize_origin(claimed)
        what = "Origin"
    if claimed is None or expected is None:
        raise AuthRefused(
            403,
            FORBIDDEN,
            "cross-site request refused: a request signed in by the session "
            "cookie must carry an Origin or Referer header of this server",
        )
    if claimed != expected:
        raise AuthRefused(
            403,
            FORBIDDEN,
            f"cross-site request refused: {what} {claimed} is not {expected}",
        )


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRefused(
            401, UNAUTHENTICATED, "Authorization: expected 'Bearer <token>'"
        )
    return token.strip()


class Authenticator:
    """Turns tokens into principals; one per API process."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.open = auth_is_open(settings)
        bootstrap = settings.bootstrap_token
        self._bootstrap = bootstrap.get_secret_value() if bootstrap else None
        self._sessions = sessions
        # When this process last wrote each token's last_used_at (monotonic).
        self._last_written: dict[uuid.UUID, float] = {}

    async def principal_for(self, token: str) -> Principal:
        """The principal ``token`` stands for; 401 if unknown or revoked."""
        if self._bootstrap is not None and hmac.compare_digest(
            token.encode(), self._bootstrap.encode()
        ):
            return BOOTSTRAP
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthRefused(401, UNAUTHENTICATED, "unknown token")
        try:
            async with self._sessions() as session:
                query = select(ApiToken).where(
                    col(ApiToken.token_hash) == hash_token(token)
                )
                row = (await session.exec(query)).first()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("token not checked, database unavailable: %s", exc)
            raise AuthRefused(503, UNAVAILABLE, "database unavailable") from exc
        if row is None:
            raise AuthRefused(401, UNAUTHENTICATED, "unknown token")
        if row.revoked_at is not None:
            raise AuthRefused(
                401, UNAUTHENTICATED, f"token {row.name!r} has been revoked"
            )
        await self._note_use(row.id)
        return Principal("token", row.name, TokenScope(row.scope), row.id)

    async def from_request(self, request: HTTPConnection) -> Principal | None:
        """The principal of an HTTP request's header or cookie; None if it has
        neither (and is not an open-mode local caller)."""
        header = request.headers.get("authorization")
        if header is not None:
            return await self.principal_for(bearer_token(header))
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = await self.principal_for(cookie)
            if isinstance(request, Request) and request.method not in SAFE_METHODS:
                check_same_origin(request)
            return principal
        if self.open and is_local_caller(request):
            return OPEN
        return None

    async def from_websocket(
        self, websocket: HTTPConnection, params: Mapping[str, Any] | None
    ) -> tuple[Principal, str | None]:
        """The principal of a WebSocket, and the token to check again before
        each of its operations.

        The token is ``connection_init``'s ``{"token": ...}``, else the
        handshake's Authorization header (clients other than browsers can
        send one), else its session cookie.
        """
        token = (params or {}).get("token")
        if token is not None and not isinstance(token, str):
            raise AuthRefused(401, UNAUTHENTICATED, "token: expected a string")
        header = websocket.headers.get("authorization")
        if not token and header is not None:
            token = bearer_token(header)
        token = token or websocket.cookies.get(SESSION_COOKIE)
        if token:
            return await self.principal_for(token), token
        if self.open and is_local_caller(websocket):
            return OPEN, None
        raise AuthRefused(
            401,
            UNAUTHENTICATED,
            'authentication required: send {"token": "<token>"} in connection_init',
        )

    async def _note_use(self, token_id: uuid.UUID) -> None:
        now = time.monotonic()
        last = self._last_written.get(token_id)
        if last is not None and now - last < LAST_USED_INTERVAL_SECONDS:
            return
        # Set before the write, so that concurrent requests do not all write.
        self._last_written[token_id] = now
        try:
            async with self._sessions.begin() as session:
                await session.exec(
                    sa.update(ApiToken)
                    .where(col(ApiToken.id) == token_id)
                    .values(last_used_at=sa.func.tickwork_now())
                )
        except (SQLAlchemyError, OSError) as exc:
            # The request may go on: the token was valid a moment ago.
            logger.warning("token last use not recorded: %s", exc)

    async def log_start(self) -> None:
        """Say how to get in: open mode loudly, a missing token helpfully."""
        if self.open:
            logger.warning(
                "AUTHENTICATION IS OFF: any program on this machine can create, "
                "change and delete jobs without a token. This is for "
                "development only (tickwork up on a loopback address)."
            )
            return
        if self._bootstrap is not None:
            return
        try:
            async with self._sessions() as session:
                live = select(sa.func.count()).where(col(ApiToken.revoked_at).is_(None))
                count = (await session.exec(live)).one()
        except (SQLAlchemyError, OSError):
            return  # the schema check has already said the database is away
        if count == 0:
            logger.warning(
                "no API token exists, so nobody can use the API yet; create one "
                "with: tickwork token create --name admin --scope write"
            )


class AuthenticatedContext(Protocol):
    principal: Principal | None
    response: Any

    async def recheck(self) -> Principal | None: ...


class Authorization(SchemaExtension):
    """Refuses operations without a principal, and mutations without write scope.

    It runs for every operation, over HTTP and WebSocket alike, so a new
    mutation is covered without code of its own.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context: AuthenticatedContext = self.execution_context.context
        try:
            principal = await context.recheck()
        except AuthRefused as exc:
            _set_status(context, exc.status)
            raise exc.graphql_error() from None
        if principal is None:
            _set_status(context, 401)
            raise AuthRefused(
                401, UNAUTHENTICATED, f"authentication required: {SIGN_IN_HINT}"
            ).graphql_error()
        operation = self.execution_context.operation_type
        if operation is OperationType.MUTATION and principal.scope != TokenScope.WRITE:
            _set_status(context, 403)
            raise GraphQLError(
                f"token {principal.name!r} may only read: mutations need a write token",
                extensions={"code": FORBIDDEN},
            )
        yield


def _set_status(context: AuthenticatedContext, status: int) -> None:
    # Over HTTP the response carries the status too; a WebSocket has none.
    if isinstance(context.response, Response):
        context.response.status_code = status


def refused_response(request: Request, exc: Exception) -> JSONResponse:
    """A refused GraphQL request, as a GraphQL response with the right status."""
    if not isinstance(exc, AuthRefused):
        raise exc
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        {
            "data": None,
            "errors": [{"message": exc.message, "extensions": {"code": exc.code}}],
        },
        status_code=exc.status,
        headers=headers,
    )
