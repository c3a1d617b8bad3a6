"""The HTTP client that runs use: aiohttp by default, httpx as a setting.

One :class:`HttpClient` lives as long as its daemon. Measured against a local sink,
httpx's own connection pool slows down as concurrency grows, and httpx's request
machinery over aiohttp's connections still cost most of a daemon's CPU per run,
so by default requests go straight to aiohttp (``shared.transports``); plain
httpx stays available as a setting.

Every request is bounded: one deadline covers the whole exchange, body included,
and at most ``max_body`` bytes of the body are read (raw bytes, before any
decompression, so a compressed bomb cannot blow up memory). Every request is
also checked against the egress policy (``shared.egress``) before it connects,
at every redirect hop, on either transport, and a redirect hop to another
origin goes without the request's secret headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import tempfile
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from shared.egress import EgressPolicy, EgressRefused, ip_literal
from shared.errors import TickworkError
from shared.transports import (
    DEFAULT_HEADERS,
    DEFAULT_PORTS,
    AiohttpPool,
    HttpResponse,
    HttpxPool,
    Pool,
    drop_secrets_across_origins,
    proxy_options,
)

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

    from shared.connecting import CheckingResolver
    from shared.settings import Settings

logger = logging.getLogger(__name__)

Transport = Literal["aiohttp", "httpx"]
# Scheme, host and port: what a per-host limit counts requests by.
Origin = tuple[str, str, int | None]

# Seconds an idle connection is kept for the next request to its origin.
KEEPALIVE_SECONDS = 30


class DeliveryError(TickworkError):
    """A request that did not produce an HTTP response: the message says why.

    ``permanent`` names why trying again cannot help (a TLS certificate that does
    not verify, a redirect loop, an invalid URL); it is None for failures that
    may pass, such as timeouts, refused connections or DNS failures.
    """

    def __init__(self, message: str, *, permanent: str | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent


# Requests in flight to one origin (scheme, host and port) at most, by default.
# A slow or hanging target then holds at most this many of a daemon's run slots
# busy with network I/O, and runs for other targets keep their connections.
PER_HOST_LIMIT = 16


@dataclass(frozen=True)
class Tls:
    """How a client presents itself and whom it trusts, for every run's request.

    ``ca_bundle`` replaces the bundled certificate authorities (certifi's);
    ``client_cert`` (and ``client_key``, unless the key is in the same file) is
    presented to servers that ask for a client certificate.
    """

    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate and its private key, as PEM text: what one job
    presents instead of the daemon's ``TICKWORK_CLIENT_CERT``."""

    certificate: str
    key: str = field(repr=False)


# One connection pool per way of connecting: whether the egress policy applies,
# whether to verify the server, the job's own certificate authorities (PEM text)
# and the job's own client certificate, when it has them.
PoolKey = tuple[bool, bool, str | None, ClientIdentity | None]

# Connection pools kept for jobs with TLS settings of their own (a caBundle or
# a client certificate), by default; more are closed once idle.
MAX_TLS_POOLS = 64

# Why a refused target is not retried.
EGRESS_PERMANENT = "the egress policy refuses this target"


class HttpClient:
    """A long-lived client; one per process, shared by every run.

    ``max_connections`` bounds the connections of the whole client and
    ``per_host`` the requests in flight to one origin (default
    :data:`PER_HOST_LIMIT`); a request waiting for a slot of its origin spends
    its own time limit waiting.

    ``egress`` says which addresses requests may reach (default: no private
    ones); every address a request connects to is checked, on both transports
    and at every redirect hop, and the connection goes to the address checked.
    ``resolver`` replaces DNS lookups (default: the system's, or c-ares asking
    ``nameservers``). ``proxy`` sends every request through an HTTP proxy; the
    target is then resolved and checked here before the request, and the proxy
    looks it up again itself. ``tls`` adds trusted authorities and a client
    certificate; ``ssl_context`` replaces the trust store outright (tests use
    it for a certificate authority of their own).
    """

    def __init__(
        self,
        *,
        transport: Transport = "aiohttp",
        max_connections: int = 256,
        per_host: int = PER_HOST_LIMIT,
        egress: EgressPolicy | None = None,
        resolver: AbstractResolver | None = None,
        nameservers: list[str] | None = None,
        proxy: str | None = None,
        tls: Tls | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_tls_pools: int = MAX_TLS_POOLS,
    ) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        if transport == "httpx":
            _require_network_backend()
        self._transport_name = transport
        self._max_connections = max_connections
        self.egress = egress or EgressPolicy()
        self._given_resolver = resolver
        self._nameservers = nameservers
        self._resolver: CheckingResolver | None = None
        self._proxy = proxy
        self._tls = tls or Tls()
        self._ssl_context = ssl_context
        self._slots = _OriginSlots(per_host)
        if self._tls != Tls():
            # A CA bundle or client certificate that cannot be loaded stops the
            # daemon at start, rather than failing every run.
            self._make_ssl_context(True, None, None)
        # TLS settings belong to a connection pool, so targets that opt out of
        # verification, or bring their own authorities, get a client of their own.
        # Jobs with TLS settings of their own each add a pool: the least
        # recently used idle ones are closed past ``max_tls_pools``.
        self._pools: OrderedDict[PoolKey, Pool] = OrderedDict()
        self._in_use: Counter[PoolKey] = Counter()
        self._max_tls_pools = max_tls_pools
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> HttpClient:
        """The client a daemon's runs use, configured by its settings."""
        return cls(
            transport=settings.http_transport,  # type: ignore[arg-type]
            egress=settings.egress_policy(),
            nameservers=settings.nameservers() or None,
            proxy=settings.proxy_url,
            tls=Tls(settings.ca_bundle, settings.client_cert, settings.client_key),
            **options,
        )

    def _checking_resolver(self) -> CheckingResolver:
        # Made on first use: the c-ares resolver wants the running event loop,
        # and a daemon starts faster without loading aiohttp before it needs it.
        from shared.connecting import CheckingResolver, make_resolver

        if self._resolver is None:
            inner = self._given_resolver or make_resolver(self._nameservers)
            self._resolver = CheckingResolver(inner, self.egress)
        return self._resolver

    def _pool(self, key: PoolKey, method: str, url: str) -> Pool:
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        checked, verify, ca_pem, identity = key
        try:
            context = self._make_ssl_context(verify, ca_pem, identity)
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise DeliveryError(
                f"{method} {redact_url(url)}: TLS settings unusable: {exc}",
                permanent="the CA bundle or client certificate is unusable",
            ) from exc
        if self._transport_name == "aiohttp":
            pool = self._aiohttp_pool(context, checked)
        else:
            pool = self._httpx_pool(context, checked)
        self._pools[key] = pool
        if ca_pem is not None or identity is not None:
            self._close_idle_pools()
        return pool

    def _close_idle_pools(self) -> None:
        """Close the least recently used pools of jobs' own TLS settings beyond
        ``max_tls_pools``, skipping those with requests in flight."""
        own = [key for key in self._pools if _own_tls(key)]
        excess = len(own) - self._max_tls_pools
        for key in own:
            if excess <= 0:
                break
            if self._in_use[key]:
                continue
            task = asyncio.get_running_loop().create_task(self._pools.pop(key).aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            excess -= 1

    @property
    def own_tls_pools(self) -> int:
        """How many pools serve jobs with TLS settings of their own."""
        return sum(1 for key in self._pools if _own_tls(key))

    @contextlib.asynccontextmanager
    async def _using(self, key: PoolKey) -> AsyncIterator[None]:
        self._in_use[key] += 1
        try:
            yield
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]

    def _make_ssl_context(
        self, verify: bool, ca_pem: str | None, identity: ClientIdentity | None
    ) -> ssl.SSLContext:
        if not verify:
            context = httpx.create_ssl_context(verify=False, trust_env=False)
        elif ca_pem is not None:
            context = ssl.create_default_context(cadata=ca_pem)
        elif self._ssl_context is not None:
            return self._ssl_context
        elif self._tls.ca_bundle is not None:
            context = ssl.create_default_context(cafile=self._tls.ca_bundle)
        else:
            context = httpx.create_ssl_context(trust_env=False)
        if identity is not None:
            _load_identity(context, identity)
        elif self._tls.client_cert is not None:
            context.load_cert_chain(self._tls.client_cert, self._tls.client_key)
        return context

    def _httpx_pool(self, context: ssl.SSLContext, checked: bool) -> HttpxPool:
        proxy = httpx.Proxy(self._proxy) if self._proxy else None
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        transport = httpx.AsyncHTTPTransport(
            verify=context, limits=limits, trust_env=False, proxy=proxy
        )
        if proxy is None and checked:
            # httpx offers no way to choose the addresses it connects to, so the
            # pool's network backend is replaced by one that connects only to
            # checked addresses. With a proxy, the connection goes to the proxy
            # and the target is checked before the request instead.
            from shared.connecting import CheckingBackend

            transport._pool._network_backend = CheckingBackend(
                self._checking_resolver()
            )
        # Secret headers are dropped from a hop before it is checked and sent.
        hooks = [drop_secrets_across_origins]
        if checked:
            hooks.append(self._check_request)
        client = httpx.AsyncClient(
            transport=transport,
            headers=DEFAULT_HEADERS,
            # Runs of different jobs share this client: a cookie one target
            # sets must not travel with another job's request.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            follow_redirects=False,
            trust_env=False,
            event_hooks={"request": hooks},
        )
        return HttpxPool(client)

    def _aiohttp_pool(self, context: ssl.SSLContext, checked: bool) -> AiohttpPool:
        # Imported here: a daemon starts faster without loading aiohttp before
        # its first request, and the pool is made inside the running event
        # loop, which is where aiohttp wants a session made.
        import aiohttp

        # Through a proxy the connector only ever resolves the proxy, which the
        # operator chose; targets are checked before each request.
        resolver = self._checking_resolver()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=context,
            resolver=resolver if checked and self._proxy is None else resolver.inner,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers=DEFAULT_HEADERS,
            # aiohttp would label every body application/octet-stream; the
            # caller's headers say what a body is, as with httpx.
            skip_auto_headers=("content-type",),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            # The deadline of ``request`` bounds every phase.
            timeout=aiohttp.ClientTimeout(),
        )
        check = self._check_target if checked else None
        return AiohttpPool(session, check, proxy_options(self._proxy))

    async def _check_request(self, request: httpx.Request) -> None:
        url = request.url
        await self._check_target(url.host, url.scheme, url.port)

    async def _check_target(self, host: str, scheme: str, port: int | None) -> None:
        """Check the target of each request, redirect hops included, before any
        connection. Names are checked again, answer by answer, where they are
        resolved for the connection; IP literals never reach a resolver."""
        self.egress.check_name(host)
        if _ip_literal(host) is not None:
            self.egress.check(host, host)
        elif self._proxy is not None:
            port = port or DEFAULT_PORTS.get(scheme, 0)
            await self._checking_resolver().resolve(host, port, socket.AF_UNSPEC)

    async def request(
        self,
        method: str,
        url: str,
        *,
        time_limit: float,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        identity: ClientIdentity | None = None,
        follow_redirects: bool = False,
        max_body: int = 64 * 1024,
        checked: bool = True,
        sensitive_headers: frozenset[str] = frozenset(),
    ) -> HttpResponse:
        """Send one request and read at most ``max_body`` bytes of the answer.

        Raises DeliveryError when no response arrives within ``time_limit`` seconds
        (waiting for a slot of the target's origin included) or the connection
        fails; any HTTP status is a response, not an error. ``ca_bundle`` (PEM
        text) replaces the trusted authorities for this request, and
        ``identity`` the client certificate it presents. ``checked``
        False skips the egress policy: only for URLs the operator configured.
        Credentials in the URL are sent as a Basic Authorization header.

        ``sensitive_headers`` names (in lower case) the headers that carry
        secrets: with Authorization and Cookie, they are not sent on to a
        redirect that leaves the URL's origin (an http URL moving to https on
        the same host keeps them).
        """
        key = (checked, verify_tls, ca_bundle if verify_tls else None, identity)
        pool = self._pool(key, method, url)
        slot = self._slots.slot(url)
        try:
            async with asyncio.timeout(time_limit), self._using(key), slot:
                return await pool.send(
                    method,
                    url,
                    headers=headers,
                    content=content,
                    follow_redirects=follow_redirects,
                    max_body=max_body,
                    time_limit=time_limit,
                    sensitive=sensitive_headers,
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
                f"{method} {redact_url(url)}: {scrub_url(meaning, url)}",
                permanent=permanent,
            ) from exc

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
        await asyncio.gather(*self._closing)
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _own_tls(key: PoolKey) -> bool:
    return key[2] is not None or key[3] is not None


def _load_identity(context: ssl.SSLContext, identity: ClientIdentity) -> None:
    """Give ``context`` a client certificate held in memory. The ssl module
    reads certificates only from files, so the pair is written to a private
    temporary directory for the moment of loading."""
    with tempfile.TemporaryDirectory(prefix="tickwork-identity-") as directory:
        path = Path(directory) / "identity.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{identity.key.strip()}\n{identity.certificate.strip()}\n")
        context.load_cert_chain(path)


def _require_network_backend() -> None:
    """Refuse to start on an httpx whose pool would not take the checking
    network backend (see ``HttpClient._make_transport``)."""
    probe = httpx.AsyncHTTPTransport(verify=False)
    if not hasattr(getattr(probe, "_pool", None), "_network_backend"):
        raise RuntimeError(
            "this version of httpx cannot connect to checked addresses only; "
            "use TICKWORK_HTTP_TRANSPORT=aiohttp"
        )


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
        port = parts.port or DEFAULT_PORTS.get(scheme)
        return scheme, (parts.hostname or "").lower(), port
    except ValueError:
        # A malformed URL fails in the client; it still needs some key.
        return "", url, None


# Whether a host is an IP literal, for hosts seen again and again.
_ip_literal = lru_cache(maxsize=4096)(ip_literal)


# The longest first path segment a redacted URL shows; a longer one may be a
# token itself (https://webhook.example/<uuid>).
REDACTED_SEGMENT = 16


def redact_url(url: str) -> str:
    """Scheme, host, port and the first path segment, as logs and errors show
    a URL: user info, query, fragment and the rest of the path can carry
    credentials (``https://hooks.slack.com/services/T0/B0/secret``), so they
    become ``…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<malformed URL>"
    first, slash, rest = parts.path.lstrip("/").partition("/")
    if len(first) > REDACTED_SEGMENT:
        first, rest = "", "…"
    path = ("/" if parts.path else "") + first + slash
    if rest or parts.query or parts.fragment:
        path += "…"
    return f"{parts.scheme}://{host}{path}"


def scrub_url(text: str, url: str) -> str:
    """``text`` with the URL, and its secret parts, replaced by the redacted
    URL: library error messages sometimes quote the whole URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "<malformed URL>")
    redacted = redact_url(url)
    netloc = parts.netloc.rpartition("@")[2]
    bare = parts._replace(netloc=netloc)
    whole = [url, urlunsplit(bare), urlunsplit(bare._replace(query="", fragment=""))]
    for form in whole:
        text = text.replace(form, redacted)
    for part in (parts.password, parts.query, parts.fragment, parts.path):
        if part and len(part) > 1:
            text = text.replace(part, "…")
    return text


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
    for link in chain:
        if isinstance(link, EgressRefused):
            return str(link), EGRESS_PERMANENT
    first, last = _aiohttp_causes()
    for kind, meaning, permanent in first + _CAUSES + last:
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


def _aiohttp_causes() -> tuple[tuple[Cause, ...], tuple[Cause, ...]]:
    """aiohttp's errors: those looked for before the generic ones, and those
    looked for after (the wider aiohttp classes)."""
    import aiohttp

    first = (
        (
            aiohttp.ClientConnectorCertificateError,
            "TLS certificate verification failed",
            _BAD_CERTIFICATE,
        ),
        (aiohttp.ClientConnectorSSLError, "TLS failed", None),
        (aiohttp.ClientConnectorDNSError, "could not resolve the host", None),
        (aiohttp.TooManyRedirects, "too many redirects", "a redirect loop"),
        (aiohttp.NonHttpUrlClientError, "unsupported URL", "the URL is invalid"),
        (aiohttp.InvalidURL, "invalid URL", "the URL is invalid"),
        (aiohttp.ServerDisconnectedError, "the server closed the connection", None),
        (aiohttp.ServerTimeoutError, "timed out", None),
        (aiohttp.ClientPayloadError, "reading the response failed", None),
        (aiohttp.ClientHttpProxyError, "the proxy refused the request", None),
        (aiohttp.ClientConnectorError, "could not connect", None),
    )
    last = (
        (aiohttp.ClientResponseError, "the server broke the HTTP protocol", None),
        (aiohttp.ClientConnectionError, "the connection failed", None),
    )
    return first, last


def _text(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        # Its str() repeats the whole URL; the message is what went wrong.
        return exc.message.strip()
    return str(exc).strip()
