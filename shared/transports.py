"""How one request travels: straight over an aiohttp session (the default), or
through httpx (``TICKWORK_HTTP_TRANSPORT=httpx``).

Either way a request sends the same headers, reads the same bounded body and
follows redirects by the same rules, httpx's: aiohttp is given one hop at a
time, so that ``shared.http`` can check each hop against the egress policy
before it connects. One rule is stricter than httpx's own: a hop that leaves
the request's origin loses every header that carries a secret, not only
Authorization, so that a target cannot redirect a job's credentials to a
server of its choosing. A pool here is one connection pool of
:class:`shared.http.HttpClient`; the client chooses it, and turns what goes
wrong into a ``DeliveryError``.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

DEFAULT_PORTS = {"http": 80, "https": 443}

USER_AGENT = "Tickwork/0.1 (+scheduler)"
# Sent with every request: bodies are read raw, so none is asked for compressed.
DEFAULT_HEADERS = {"user-agent": USER_AGENT, "accept-encoding": "identity"}

# Redirects followed for one request at most, as httpx counts them.
MAX_REDIRECTS = 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Headers that carry a secret whatever the job says, lower case: they, and the
# names a request marks sensitive, go to the request's origin only.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
# Where an httpx request carries its origin and its secret header names, from
# hop to hop (httpx hands a request's extensions on to its redirects).
_SECRETS_EXTENSION = "tickwork.secrets"

# Scheme, host and port (the default one when the URL names none).
Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class HttpResponse:
    """What came back: the status, the headers and a bounded body.

    ``headers`` is read-only and case-insensitive, whichever transport made it.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool


# Checks a request's host (scheme and port) against the egress policy.
Check = Callable[[str, str, int | None], Awaitable[None]]


class HttpxPool:
    """Requests through httpx's own transport (``TICKWORK_HTTP_TRANSPORT=httpx``);
    httpx follows redirects, and its request hook checks every hop."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        content: bytes | None,
        follow_redirects: bool,
        max_body: int,
        time_limit: float,
        sensitive: frozenset[str] = frozenset(),
    ) -> HttpResponse:
        # Credentials in the URL become a Basic Authorization header once, here,
        # rather than both in the URL and as a header.
        target, auth = _split_credentials(url)
        extensions: dict[str, Any] = {}
        if follow_redirects:
            # Read at every hop by drop_secrets_across_origins.
            origin = _httpx_origin(httpx.URL(target))
            extensions[_SECRETS_EXTENSION] = (origin, CREDENTIAL_HEADERS | sensitive)
        async with self._client.stream(
            method,
            target,
            headers=headers,
            content=content,
            auth=auth,
            # Per-phase timeouts guard each step; the deadline bounds the sum.
            timeout=httpx.Timeout(time_limit),
            follow_redirects=follow_redirects,
            extensions=extensions,
        ) as response:
            body, truncated = await _read_bounded(response, max_body)
            return HttpResponse(
                status=response.status_code,
                headers=response.headers,
                body=body,
                truncated=truncated,
            )

    async def aclose(self) -> None:
        await self._client.aclose()


async def drop_secrets_across_origins(request: httpx.Request) -> None:
    """httpx's request hook: remove the secret headers from a redirect hop
    that left the origin of the request it follows.

    httpx drops only Authorization on such a hop (and Cookie on every hop), so
    the job's own secret headers are dropped here, before the hop is sent. The
    hop is compared with the first request's origin; once dropped, the headers
    stay dropped for the hops after it, which inherit this one's headers.
    """
    secrets = request.extensions.get(_SECRETS_EXTENSION)
    if secrets is None:
        return
    origin, names = secrets
    if _keeps_secrets(origin, _httpx_origin(request.url)):
        return
    for name in names:
        request.headers.pop(name, None)


def _httpx_origin(url: httpx.URL) -> Origin:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


class AiohttpPool:
    """Requests sent with one aiohttp session directly.

    Redirects are followed here rather than by aiohttp: aiohttp asks no
    resolver about IP literals, so each hop is checked before it is sent, and
    the hops follow the rules httpx follows on the other transport.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        check: Check | None,
        proxy: dict[str, Any],
    ) -> None:
        self._session = session
        self._check = check
        self._proxy = proxy

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        content: bytes | None,
        follow_redirects: bool,
        max_body: int,
        time_limit: float,
        sensitive: frozenset[str] = frozenset(),
    ) -> HttpResponse:
        target = _aiohttp_target(url)
        where = target.url
        if target.authorization is not None:
            headers = _with_authorization(headers, target.authorization)
        redirects = 0
        while True:
            if self._check is not None:
                await self._check(where.raw_host, where.scheme, where.port)
            async with self._session.request(
                method,
                where,
                headers=headers,
                data=content,
                allow_redirects=False,
                **self._proxy,
            ) as response:
                status = response.status
                location = None
                if follow_redirects and status in _REDIRECTS:
                    # Without a location the redirect is the answer, as with httpx.
                    location = response.headers.get("location")
                if location is None:
                    body, truncated = await _read_stream(response.content, max_body)
                    return HttpResponse(status, response.headers, body, truncated)
                if redirects == MAX_REDIRECTS:
                    raise _too_many_redirects(response)
                # Read, so that the connection serves the next hop.
                await _read_stream(response.content, max_body)
            redirects += 1
            method, where, headers, content = _redirect(
                status, location, method, where, headers, content, sensitive
            )

    async def aclose(self) -> None:
        await self._session.close()


Pool = HttpxPool | AiohttpPool


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


async def _read_stream(stream: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    # At most one byte past the limit is read: it tells a cut body from one
    # that fit exactly.
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return (body[:limit], True) if size > limit else (body, False)


@dataclass(frozen=True)
class _Target:
    """A URL as aiohttp sends it: parsed, without its credentials, which
    become ``authorization``."""

    url: URL
    authorization: str | None


# Runs of one job send to the same URL again and again; parsing it once saves
# most of the work, and a bounded table keeps memory flat.
@lru_cache(maxsize=1024)
def _aiohttp_target(url: str) -> _Target:
    import aiohttp
    from yarl import URL

    try:
        parsed = URL(url)
    except ValueError as exc:
        raise aiohttp.InvalidUrlClientError(url) from exc
    if parsed.scheme not in DEFAULT_PORTS:
        raise aiohttp.NonHttpUrlClientError(url)
    if not parsed.raw_host:
        raise aiohttp.InvalidUrlClientError(url)
    if parsed.raw_user is None and parsed.raw_password is None:
        return _Target(parsed, None)
    authorization = _basic(parsed.user or "", parsed.password or "")
    return _Target(parsed.with_user(None), authorization)


def _basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _with_authorization(
    headers: dict[str, str] | None, authorization: str
) -> dict[str, str]:
    # Credentials in the URL win over an Authorization header, as with httpx.
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
    kept["authorization"] = authorization
    return kept


def proxy_options(proxy: str | None) -> dict[str, Any]:
    """aiohttp's arguments for sending through ``proxy``: credentials in its
    URL become a Proxy-Authorization header, as httpx sends them."""
    if proxy is None:
        return {}
    target = _aiohttp_target(proxy)
    if target.authorization is None:
        return {"proxy": target.url}
    headers = {"proxy-authorization": target.authorization}
    return {"proxy": target.url, "proxy_headers": headers}


def _redirect(
    status: int,
    location: str,
    method: str,
    url: URL,
    headers: dict[str, str] | None,
    content: bytes | None,
    sensitive: frozenset[str],
) -> tuple[str, URL, dict[str, str] | None, bytes | None]:
    """The next hop after ``url`` answered ``status`` with ``location``, made
    as httpx makes it: a relative location is resolved against ``url``; 303,
    and 301 or 302 after a POST, continue as a GET without the body. Secret
    headers (Authorization, Cookie and the ``sensitive`` names, in lower
    case) go to the same origin only, or to the same host moved to https."""
    import aiohttp
    from yarl import URL

    try:
        target = URL(location)
        if not target.scheme or not target.raw_host:
            target = url.join(target)
    except ValueError as exc:
        raise aiohttp.InvalidUrlRedirectClientError(
            location, "the redirect location is not a URL"
        ) from exc
    if target.scheme not in DEFAULT_PORTS:
        raise aiohttp.NonHttpUrlRedirectClientError(location)
    if not target.raw_host:
        raise aiohttp.InvalidUrlRedirectClientError(
            location, "the redirect location has no host"
        )

    if (status == 303 and method != "HEAD") or (
        status in (301, 302) and method == "POST"
    ):
        method, content = "GET", None

    before = (url.scheme, url.raw_host or "", url.port)
    after = (target.scheme, target.raw_host or "", target.port)
    if headers and not _keeps_secrets(before, after):
        secrets = CREDENTIAL_HEADERS | sensitive
        headers = {k: v for k, v in headers.items() if k.lower() not in secrets}
    return method, target, headers, content


def _keeps_secrets(before: Origin, after: Origin) -> bool:
    """Whether a redirect from ``before`` to ``after`` may carry secret
    headers: to the same origin, or the same host moved from http to https on
    the default ports, as httpx decides for Authorization."""
    if before == after:
        return True
    (scheme, host, port), (new_scheme, new_host, new_port) = before, after
    upgraded = (scheme, port, new_scheme, new_port) == ("http", 80, "https", 443)
    return host == new_host and upgraded


def _too_many_redirects(response: aiohttp.ClientResponse) -> BaseException:
    import aiohttp

    return aiohttp.TooManyRedirects(
        response.request_info, (), message=f"more than {MAX_REDIRECTS} redirects"
    )


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
