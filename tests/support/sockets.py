"""Which addresses this process connected to, seen at the socket itself.

Python raises a ``socket.connect`` audit event for every ``connect`` call on a
socket, whichever library made it (asyncio, aiohttp, anyio, httpcore): a
:class:`Connections` recorder lists the TCP addresses of those calls while it
is open, made by the thread that opened it: the event loop's, where a daemon
runs, and not the threads of the test's own servers and proxy. It sees
connections, not intentions: a test that says "no connection was attempted"
asserts it against this list.

Audit hooks cannot be removed, so one hook is installed on first use and hands
events to whichever recorders are open.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

_recorders: list[Connections] = []
_lock = threading.Lock()
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _recorders:
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not isinstance(address, tuple) or sock.type != socket.SOCK_STREAM:
        return
    thread = threading.get_ident()
    with _lock:
        for recorder in _recorders:
            if recorder.thread == thread:
                recorder.addresses.append((str(address[0]), int(address[1])))


class Connections:
    """Records ``(host, port)`` of every TCP connect while open."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int]] = []
        self.thread = threading.get_ident()

    def to_port(self, port: int) -> list[str]:
        """The addresses connected to on ``port``."""
        return [host for host, p in self.addresses if p == port]

    def __enter__(self) -> Connections:
        global _installed
        with _lock:
            if not _installed:
                sys.addaudithook(_hook)
                _installed = True
            _recorders.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _recorders.remove(self)
