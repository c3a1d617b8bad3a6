"""A DNS server on loopback that answers from a table, for tests of what a name
resolves to: a real UDP server the daemon's resolver (c-ares, through
``TICKWORK_DNS_SERVERS``) asks like any other.

A name maps to one address, or to a list of addresses given out in turn, one per
A query, the last one repeating: a name that answers a public address first and
a private one afterwards, as in DNS rebinding. Answers have a TTL of 0, so no
cache keeps the first one on purpose. Names it does not know get NXDOMAIN, and
AAAA queries an empty answer.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


class StubDns:
    """Use as a context manager; :attr:`nameserver` is its ``ip:port``."""

    def __init__(self, names: dict[str, str | list[str]]) -> None:
        self._names = {
            name.lower().rstrip("."): [value] if isinstance(value, str) else value
            for name, value in names.items()
        }
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        # Wakes the serving thread now and then to see whether to stop.
        self._socket.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def __enter__(self) -> StubDns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                query = DNSRecord.parse(data)
            except Exception:
                continue
            reply = self._answer(query)
            self._socket.sendto(reply.pack(), client)

    def _answer(self, query: DNSRecord) -> DNSRecord:
        reply = query.reply()
        name = str(query.q.qname).lower().rstrip(".")
        addresses = self._names.get(name)
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if query.q.qtype == QTYPE.A:
            with self._lock:
                turn = self.queries[name]
                self.queries[name] += 1
            address = addresses[min(turn, len(addresses) - 1)]
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        return reply
