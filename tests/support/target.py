"""A real HTTP server on loopback that plays a webhook target or a fetch source.

It runs in a thread of its own, so tests in any process or event loop can use
it, and records every request it receives. Paths choose the behaviour:

* ``/ok`` (and any unknown path): 200 with a small JSON body;
* ``/status/<code>``: that status;
* ``/flaky/<n>``: 500 for the first n requests, then 200;
* ``/json``: 200 with ``{"content": ..., "author": ...}``;
* ``/redirect``: 302 to ``/ok``;
* ``/slow/<seconds>``: answers after that long;
* ``/binary``: 200 with a body of NUL bytes and bytes that are not UTF-8;
* ``/json-nul``: 200 with JSON whose string holds a NUL character;
* ``/echo``: 200 with the request's headers as JSON, as test services answer;
* ``/set-cookie``: 200 with a ``Set-Cookie`` header for the whole host.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses connections when many runs start at once.
    request_queue_size = 512
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (a run that timed out) is expected, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Target:
    """A recording HTTP server; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._hits: Counter[str] = Counter()
        self._changed = threading.Condition()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                target._handle(self)

            def do_POST(self) -> None:
                target._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def __enter__(self) -> Target:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` requests arrived; fail the test if they do not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests within {timeout} s, "
                        f"got {len(self.requests)}"
                    )
                self._changed.wait(left)
            return list(self.requests)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        with self._changed:
            self._hits[path] += 1
            hits = self._hits[path]
            self.requests.append(
                Received(
                    handler.command,
                    path,
                    {k.lower(): v for k, v in handler.headers.items()},
                    body,
                )
            )
            self._changed.notify_all()

        status, payload, extra = self._respond(path, hits)
        if path.startswith("/echo"):
            payload = {"headers": dict(handler.headers.items())}
        data = json.dumps(payload).encode()
        if path.startswith("/binary"):
            data = b"\x00\xff\xfe not UTF-8 \x00 at all"
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _respond(self, path: str, hits: int) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")
        if parts[0] == "status":
            return int(parts[1]), {"status": int(parts[1])}, {}
        if parts[0] == "flaky":
            failing = hits <= int(parts[1])
            return (500, {"error": "flaky"}, {}) if failing else (200, {"ok": True}, {})
        if parts[0] == "json":
            return 200, {"content": "Simple is better.", "author": "A tester"}, {}
        if parts[0] == "redirect":
            return 302, {}, {"location": self.url("/ok")}
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
        if parts[0] == "json-nul":
            return 200, {"text": "a\x00b"}, {}
        if parts[0] == "set-cookie":
            return 200, {"ok": True}, {"set-cookie": "session=from-target; Path=/"}
        return 200, {"ok": True}, {}
