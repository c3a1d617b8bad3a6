"""The HTTP client that runs use: httpx's API over a chosen transport.

One :class:`HttpClient` lives as long as its daemon. Measured against a local sink,
httpx's own connection pool slows down as concurrency grows, while the same httpx
API over aiohttp's connection handling (``httpx-aiohttp``) keeps up, so aiohttp is
the default transport and plain httpx stays available as a setting.

Every request is bounded: one deadline covers the whole exchange, body included,
and at most ``max_body`` bytes of the body are read (raw bytes, before any
decompression, so a compressed bomb cannot blow up memory).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from shared.errors import TickworkError

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

logger = logging.getLogger(__name__)

Transport = Literal["aiohttp", "httpx"]
# Scheme, host and port: what a per-host limit counts requests by.
Origin = tuple[str, str, int | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}

USER_AGENT = "Tickwork/0.1 (+scheduler)"


class DeliveryError(TickworkError):
    """A request that did not produce an HTTP response: the message says why.

    ``permanent`` names why trying again cannot help (a TLS certificate that does
    not verify, a redirect loop, an invalid URL); it is None for failures that
    may pass, such as timeouts, refused connections or DNS failures.
    """

    def __init__(self, message: str, *, permanent: str | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class HttpResponse:
    """What came back: the status, the headers and a bounded body."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


# Requests in flight to one origin (scheme, host and port) at most, by default.
# A slow or hanging target then holds at most this many of a daemon's run slots
# busy with network I/O, and runs for other targets keep their connections.
PER_HOST_LIMIT = 16


class HttpClient:
    """A long-lived client; one per process, shared by every run.

    ``max_connections`` bounds the connections of the whole client and
    ``per_host`` the requests in flight to one origin (default
    :data:`PER_HOST_LIMIT`); a request waiting for a slot of its origin spends
    its own time limit waiting. ``resolver`` replaces DNS lookups (aiohttp
    transport only), and ``ssl_context`` the trust store that verifies servers
    (default: httpx's, from certifi); both exist so tests can fake a name that
    does not resolve or a certificate authority of their own.
    """

    def __init__(
        self,
        *,
        transport: Transport = "aiohttp",
        max_connections: int = 256,
        per_host: int = PER_HOST_LIMIT,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        if resolver is not None and transport != "aiohttp":
            raise ValueError("a resolver needs the aiohttp transport")
        self._transport_name = transport
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30,
        )
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._slots = _OriginSlots(per_host)
        # TLS verification is a property of the connection pool, so targets that
        # opt out of it get a client of their own.
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def _client(self, verify_tls: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify_tls)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._make_transport(verify_tls),
                headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[verify_tls] = client
        return client

    def _make_transport(self, verify_tls: bool) -> httpx.AsyncBaseTransport:
        verify: ssl.SSLContext | bool = verify_tls
        if verify_tls and self._ssl_context is not None:
            verify = self._ssl_context
        if self._transport_name == "aiohttp":
            return self._aiohttp_transport(verify)
        return httpx.AsyncHTTPTransport(
            verify=verify, limits=self._limits, trust_env=False
        )

    def _aiohttp_transport(
        self, verify: ssl.SSLContext | bool
    ) -> httpx.AsyncBaseTransport:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        context = httpx.create_ssl_context(verify=verify, trust_env=False)

        # The session is made on first use, inside the running event loop,
        # which is where aiohttp wants it made.
        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry,
                ssl=context,
                resolver=self._resolver,
            )
            return aiohttp.ClientSession(connector=connector, trust_env=False)

        return AiohttpTransport(client=session, trust_env=False)

    async def request(
        self,
        method: str,
        url: str,
        *,
        time_limit: float,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        verify_tls: bool = True,
        follow_redirects: bool = False,
        max_body: int = 64 * 1024,
    ) -> HttpResponse:
        """Send one request and read at most ``max_body`` bytes of the answer.

        Raises DeliveryError when no response arrives within ``time_limit`` seconds
        (waiting for a slot of the target's origin included) or the connection
        fails; any HTTP status is a response, not an error.
        """
        client = self._client(verify_tls)
        # Per-phase timeouts guard each step; the deadline below bounds the sum.
        phase = httpx.Timeout(time_limit)
        # Credentials in the URL become a Basic Authorization header once, here,
        # rather than both in the URL and as a header (aiohttp refuses that).
        target, auth = _split_credentials(url)
        slot = self._slots.slot(url)
        try:
            async with asyncio.timeout(time_limit), slot:
                async with client.stream(
                    method,
                    target,
                    headers=headers,
                    content=content,
                    auth=auth,
                    timeout=phase,
                    follow_redirects=follow_redirects,
                ) as response:
                    body, truncated = await _read_bounded(response, max_body)
                    return HttpResponse(
                        status=response.status_code,
                        headers=response.headers,
                        body=body,
                        truncated=truncated,
                    )
        except TimeoutError:
            message = f"{method} {redact_url(url)} timed out after {time_limit:g} s"
            if not slot.acquired:
                message += (
                    " waiting for a free slot (at most "
                    f"{self._slots.limit} requests to one host at a time)"
                )
            raise DeliveryError(message) from None
        except Exception as exc:
            # The boundary of the HTTP layer: whatever went wrong, the run gets
            # an error that says what, and never a crash.
            meaning, permanent = _describe(exc)
            raise DeliveryError(
                f"{method} {redact_url(url)}: {meaning}", permanent=permanent
            ) from exc

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class _OriginSlots:
    """A semaphore per origin, made on demand and dropped when unused, so the
    table holds only origins with requests in flight or waiting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._origins: dict[Origin, _Origin] = {}

    def slot(self, url: str) -> _Slot:
        return _Slot(self, _origin(url))

    def enter(self, key: Origin) -> asyncio.Semaphore:
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(asyncio.Semaphore(self.limit))
        origin.users += 1
        return origin.semaphore

    def leave(self, key: Origin) -> None:
        origin = self._origins[key]
        origin.users -= 1
        if origin.users == 0:
            del self._origins[key]


@dataclass
class _Origin:
    semaphore: asyncio.Semaphore
    users: int = 0


class _Slot:
    """One request's slot: waits for it on entry, gives it back on exit."""

    def __init__(self, slots: _OriginSlots, key: Origin) -> None:
        self._slots = slots
        self._key = key
        self._semaphore: asyncio.Semaphore | None = None
        self.acquired = False

    async def __aenter__(self) -> None:
        semaphore = self._slots.enter(self._key)
        try:
            await semaphore.acquire()
        except BaseException:
            # Cancelled (the deadline passed) while waiting: leave the table.
            self._slots.leave(self._key)
            raise
        self._semaphore = semaphore
        self.acquired = True

    async def __aexit__(self, *exc: object) -> None:
        self._semaphore.release()
        self._slots.leave(self._key)


def _origin(url: str) -> Origin:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
        return scheme, (parts.hostname or "").lower(), port
    except ValueError:
        # A malformed URL fails in the client; it still needs some key.
        return "", url, None


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    # Reading one chunk past the limit tells a cut body from one that fit exactly.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def redact_url(url: str) -> str:
    """Scheme, host and the start of the path: URLs may carry credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<malformed URL>"
    path = parts.path[:16] + ("…" if len(parts.path) > 16 else "")
    return f"{parts.scheme}://{host}{path}"


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), auth


# What went wrong, by the exception (or the one it was raised from), most
# specific first, and why retrying cannot help when it cannot. Transports wrap
# each other's errors, and not always in the class one would expect (a refused
# connection can arrive as a ConnectTimeout), so the whole chain is looked at.
Cause = tuple[type[BaseException], str, str | None]

# A certificate that does not verify fails the same way on every attempt: it is
# a configuration problem of the target or the job, not an outage.
_BAD_CERTIFICATE = "the certificate does not verify; fix it or set verifyTls: false"

_CAUSES: tuple[Cause, ...] = (
    (
        ssl.SSLCertVerificationError,
        "TLS certificate verification failed",
        _BAD_CERTIFICATE,
    ),
    (ssl.SSLError, "TLS failed", None),
    (socket.gaierror, "could not resolve the host", None),
    (ConnectionRefusedError, "connection refused", None),
    (ConnectionResetError, "connection reset by the server", None),
    (httpx.TooManyRedirects, "too many redirects", "a redirect loop"),
    (httpx.InvalidURL, "invalid URL", "the URL is invalid"),
    (httpx.UnsupportedProtocol, "unsupported URL", "the URL is invalid"),
    (httpx.RemoteProtocolError, "the server broke the HTTP protocol", None),
    (httpx.TimeoutException, "timed out", None),
    (httpx.ConnectError, "could not connect", None),
    (httpx.ReadError, "reading the response failed", None),
    (httpx.WriteError, "sending the request failed", None),
)


def _describe(exc: BaseException) -> tuple[str, str | None]:
    """What went wrong, and why a retry cannot help (None when it may)."""
    chain = _chain(exc)
    for kind, meaning, permanent in _aiohttp_causes() + _CAUSES:
        for link in chain:
            if isinstance(link, kind):
                detail = _text(link)
                return (f"{meaning}: {detail}" if detail else meaning), permanent
    return f"{type(exc).__name__}: {_text(exc)}", None


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or current.__context__
    # The innermost cause is the most specific.
    return list(reversed(links))


def _aiohttp_causes() -> tuple[Cause, ...]:
    import aiohttp

    return (
        (
            aiohttp.ClientConnectorCertificateError,
            "TLS certificate verification failed",
            _BAD_CERTIFICATE,
        ),
        (aiohttp.ClientConnectorSSLError, "TLS failed", None),
        (aiohttp.ClientConnectorDNSError, "could not resolve the host", None),
        (aiohttp.ServerDisconnectedError, "the server closed the connection", None),
        (aiohttp.ServerTimeoutError, "timed out", None),
        (aiohttp.ClientConnectorError, "could not connect", None),
    )


def _text(exc: BaseException) -> str:
    return str(exc).strip()
