"""Where the egress policy meets the connections: resolvers and a network
backend that hand out only the addresses the policy allows.

:class:`CheckingResolver` applies the policy to every answer of an aiohttp
resolver, and :class:`CheckingBackend` does the same for httpx's own transport;
either way the connection goes to an address that was checked, never to the
answer of a second lookup. Kept apart from ``shared.egress`` so that the API,
which only validates URLs, does not load the HTTP stack.
"""

from __future__ import annotations

import socket
from typing import Any

import httpcore
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.egress import EgressPolicy, EgressRefused, ip_literal


class CheckingResolver(AbstractResolver):
    """An aiohttp resolver that returns only answers the policy allows.

    Every answer of the inner resolver is checked; one refused answer refuses
    the name (a name that mixes public and private answers is not to be
    trusted). The connection then uses these answers, so what was checked is
    what is connected to. aiohttp does not ask a resolver about IP-literal
    hosts: those are checked before the request (see ``shared.http``).
    """

    def __init__(self, inner: AbstractResolver, policy: EgressPolicy) -> None:
        self.inner = inner
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.policy.check_name(host)
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            self.policy.check(host, answer["host"])
        return answers

    async def close(self) -> None:
        await self.inner.close()


def make_resolver(nameservers: list[str] | None = None) -> AbstractResolver:
    """The resolver runs use: the system's (getaddrinfo in a thread), or c-ares
    asking ``nameservers`` (``ip`` or ``ip:port``) when given. Must be called
    inside the running event loop."""
    from aiohttp.resolver import AsyncResolver, ThreadedResolver

    if nameservers:
        return AsyncResolver(nameservers=nameservers)
    return ThreadedResolver()


class CheckingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for httpx's own transport, connecting only to
    checked addresses.

    httpcore hands the backend the host name; this backend resolves it with the
    checking resolver and connects to one of the answers by address. TLS is
    started afterwards by httpcore with the URL's host name, so SNI and
    certificate checks are unchanged.
    """

    def __init__(self, resolver: CheckingResolver) -> None:
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        if ip_literal(host) is not None:
            self._resolver.policy.check(host, host)
            addresses = [host]
        else:
            try:
                answers = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
            except socket.gaierror:
                raise
            except OSError as exc:
                # c-ares reports a failed lookup as a plain OSError; callers
                # tell DNS failures apart by gaierror.
                raise socket.gaierror(socket.EAI_NONAME, str(exc)) from exc
            addresses = [answer["host"] for answer in answers]
        last: BaseException | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (OSError, httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                # One answer that does not take connections: try the next.
                last = exc
        if last is None:
            raise OSError(socket.EAI_NONAME, f"no address for {host}")
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise EgressRefused("refused: Unix sockets are not a run target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
