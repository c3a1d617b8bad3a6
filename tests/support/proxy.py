"""A small forward HTTP proxy on loopback: what ``TICKWORK_PROXY_URL`` points at
in tests.

It forwards plain requests given in absolute form (``GET http://host/path``),
one per connection, and tunnels ``CONNECT host:port`` for HTTPS. It resolves
and connects wherever it is asked, as a real proxy does; :attr:`Proxy.targets`
lists what it was asked for, in order.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from urllib.parse import urlsplit


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxy:
    """Use as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self) -> None:
                proxy._handle(self)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        line = handler.rfile.readline(65536).decode("latin-1")
        parts = line.split()
        if len(parts) != 3:
            return
        method, target, version = parts
        headers = []
        while (header := handler.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            headers.append(header)
        with self._lock:
            self.targets.append(f"{method} {target}")

        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            try:
                upstream = socket.create_connection((host.strip("[]"), int(port)), 10)
            except OSError:
                handler.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            handler.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            handler.wfile.flush()
            _pipe(handler.connection, upstream)
            return

        url = urlsplit(target)
        length = 0
        kept = []
        for header in headers:
            name = header.split(b":", 1)[0].strip().lower()
            if name == b"content-length":
                length = int(header.split(b":", 1)[1])
            if name in (b"connection", b"proxy-connection", b"keep-alive"):
                continue
            kept.append(header)
        body = handler.rfile.read(length) if length else b""
        path = url.path or "/"
        if url.query:
            path += f"?{url.query}"
        try:
            upstream = socket.create_connection((url.hostname, url.port or 80), 10)
        except OSError:
            handler.wfile.write(
                b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"
            )
            return
        with upstream:
            upstream.sendall(
                f"{method} {path} {version}\r\n".encode()
                + b"".join(kept)
                + b"connection: close\r\n\r\n"
                + body
            )
            answer = _read_all(upstream)
        # One request per connection: the client is told so.
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = [
            h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")
        ]
        handler.wfile.write(b"\r\n".join([*lines, b"connection: close"]) + b"\r\n\r\n")
        handler.wfile.write(rest)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""

    def copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
    back.start()
    copy(client, upstream)
    back.join(timeout=10)
    upstream.close()
