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
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from shared.errors import TickworkError

logger = logging.getLogger(__name__)

Transport = Literal["aiohttp", "httpx"]

USER_AGENT = "Tickwork/0.1 (+scheduler)"


class DeliveryError(TickworkError):
    """A request that did not produce an HTTP response: the message says why."""


@dataclass(frozen=True)
class HttpResponse:
    """What came back: the status, the headers and a bounded body."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


class HttpClient:
    """A long-lived client; one per process, shared by every run."""

    def __init__(
        self, *, transport: Transport = "aiohttp", max_connections: int = 256
    ) -> None:
        self._transport_name = transport
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30,
        )
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
        if self._transport_name == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            return AiohttpTransport(
                verify=verify_tls, limits=self._limits, trust_env=False
            )
        return httpx.AsyncHTTPTransport(
            verify=verify_tls, limits=self._limits, trust_env=False
        )

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
        or the connection fails; any HTTP status is a response, not an error.
        """
        client = self._client(verify_tls)
        # Per-phase timeouts guard each step; the deadline below bounds the sum.
        phase = httpx.Timeout(time_limit)
        # Credentials in the URL become a Basic Authorization header once, here,
        # rather than both in the URL and as a header (aiohttp refuses that).
        target, auth = _split_credentials(url)
        try:
            async with asyncio.timeout(time_limit):
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
            raise DeliveryError(
                f"{method} {redact_url(url)} timed out after {time_limit:g} s"
            ) from None
        except Exception as exc:
            # The boundary of the HTTP layer: whatever went wrong, the run gets
            # an error that says what, and never a crash.
            raise DeliveryError(
                f"{method} {redact_url(url)}: {_describe(exc)}"
            ) from exc

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


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
# specific first. Transports wrap each other's errors, and not always in the
# class one would expect (a refused connection can arrive as a ConnectTimeout),
# so the whole chain is looked at.
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ssl.SSLCertVerificationError, "TLS certificate verification failed"),
    (ssl.SSLError, "TLS failed"),
    (socket.gaierror, "could not resolve the host"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by the server"),
    (httpx.TooManyRedirects, "too many redirects"),
    (httpx.InvalidURL, "invalid URL"),
    (httpx.RemoteProtocolError, "the server broke the HTTP protocol"),
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "could not connect"),
    (httpx.ReadError, "reading the response failed"),
    (httpx.WriteError, "sending the request failed"),
)


def _describe(exc: BaseException) -> str:
    chain = _chain(exc)
    for kind, meaning in _aiohttp_causes() + _CAUSES:
        for link in chain:
            if isinstance(link, kind):
                detail = _text(link)
                return f"{meaning}: {detail}" if detail else meaning
    return f"{type(exc).__name__}: {_text(exc)}"


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or current.__context__
    # The innermost cause is the most specific.
    return list(reversed(links))


def _aiohttp_causes() -> tuple[tuple[type[BaseException], str], ...]:
    import aiohttp

    return (
        (
            aiohttp.ClientConnectorCertificateError,
            "TLS certificate verification failed",
        ),
        (aiohttp.ClientConnectorSSLError, "TLS failed"),
        (aiohttp.ClientConnectorDNSError, "could not resolve the host"),
        (aiohttp.ServerDisconnectedError, "the server closed the connection"),
        (aiohttp.ServerTimeoutError, "timed out"),
        (aiohttp.ClientConnectorError, "could not connect"),
    )


def _text(exc: BaseException) -> str:
    return str(exc).strip()
