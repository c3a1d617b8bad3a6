"""Misbehaving HTTP and HTTPS servers on loopback, for what real targets do wrong.

:class:`Hostile` runs in threads of its own, like :class:`tests.support.target.Target`,
and stops cleanly: leaving the context wakes every handler that is holding a
connection open on purpose, shuts the open connections down and joins the
threads. Paths choose the misbehaviour:

* ``/ok``: 200 with a small JSON body;
* ``/hang``: reads the request and never answers;
* ``/drip``: sends the headers, then the body one byte per second;
* ``/slow/<seconds>``: answers after that long; :attr:`Hostile.peak` is the
  largest number of such requests it held at once;
* ``/status/<code>``: that status;
* ``/retry-after/<code>/<kind>[/<seconds>]``: that status with a Retry-After
  header of ``seconds`` (that many seconds), ``date`` (an HTTP-date that many
  seconds after the response's Date), ``past`` (a date an hour ago),
  ``garbage`` or ``huge`` (a thousand years in seconds);
* ``/redirect``: 302 to ``/ok``; ``/loop``: 302 to itself;
* ``/to/<url>``: 302 to that URL (percent-encoded);
* ``/big``: a 50 MB body;
* ``/gzip-bomb``: ``Content-Encoding: gzip``, about 256 KiB on the wire that
  inflate to 256 MiB.

Pass an ``ssl.SSLContext`` (see :func:`server_context`) to serve HTTPS, and
``host`` (and ``port``) to listen on another loopback address than 127.0.0.1.
:attr:`Hostile.connections` counts the connections it accepted.
:class:`StubResolver` stands in for DNS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import sys
import tempfile
import threading
import zlib
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import trustme
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIG_BODY_BYTES = 50 * 1000 * 1000
BOMB_INFLATED_BYTES = 256 * 1024 * 1024
HUGE_RETRY_AFTER = str(1000 * 365 * 24 * 3600)

_FILLER = b"x" * (64 * 1024)


@lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """Zeros, gzip-compressed a MiB at a time so making it stays small too."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    mib = bytes(1024 * 1024)
    parts = [packer.compress(mib) for _ in range(BOMB_INFLATED_BYTES // len(mib))]
    parts.append(packer.flush())
    return b"".join(parts)


class _Server(ThreadingHTTPServer):
    request_queue_size = 512
    # Handler threads are joined on close; Hostile makes sure they can end.
    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up (timeouts, rejected certificates, a body cut
        # short on purpose) are what these servers are for.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Hostile:
    """A misbehaving server on 127.0.0.1; use as a context manager."""

    def __init__(
        self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.requests: list[str] = []
        self.connections = 0
        # The subject of the client certificate of each TLS connection that
        # presented one.
        self.client_certificates: list[Any] = []
        self.peak = 0
        self.big_bytes_sent = 0
        self._slow_now = 0
        self._tls = tls
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # No handler waits longer than this for a client that went silent.
            timeout = 10

            def setup(self) -> None:
                with hostile._lock:
                    hostile.connections += 1
                if hostile._tls is not None:
                    self.request.settimeout(self.timeout)
                    self.request = hostile._tls.wrap_socket(
                        self.request, server_side=True
                    )
                    peer = self.request.getpeercert()
                    if peer:
                        with hostile._lock:
                            hostile.client_certificates.append(peer["subject"])
                with hostile._lock:
                    hostile._open.add(self.request)
                super().setup()

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with hostile._lock:
                        hostile._open.discard(self.request)
                    if hostile._tls is not None:
                        self.request.close()

            def do_GET(self) -> None:
                hostile._handle(self)

            def do_POST(self) -> None:
                hostile._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self.host}:{port}"

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            for conn in self._open:
                # Wakes a handler blocked reading from or writing to a client.
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()  # joins the handler threads
        self._thread.join()

    # -- behaviours ----------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        _read_body(handler)
        path = handler.path
        with self._lock:
            self.requests.append(path)
        parts = path.strip("/").split("/")
        kind = parts[0]

        if kind == "hang":
            self._stopping.wait()
            handler.close_connection = True
        elif kind == "drip":
            self._drip(handler)
        elif kind == "slow":
            self._slow(handler, float(parts[1]))
        elif kind == "status":
            _send(handler, int(parts[1]), b'{"error": "as asked"}')
        elif kind == "retry-after":
            code, value = int(parts[1]), _retry_after(parts[2:])
            _send(handler, code, b'{"error": "later"}', {"retry-after": value})
        elif kind == "redirect":
            _send(handler, 302, b"", {"location": self.url("/ok")})
        elif kind == "to":
            target = unquote(path.split("/to/", 1)[1])
            _send(handler, 302, b"", {"location": target})
        elif kind == "loop":
            _send(handler, 302, b"", {"location": self.url("/loop")})
        elif kind == "big":
            self._big(handler)
        elif kind == "gzip-bomb":
            headers = {"content-encoding": "gzip"}
            _send(handler, 200, gzip_bomb(), headers)
        else:
            _send(handler, 200, b'{"ok": true}')

    def _drip(self, handler: BaseHTTPRequestHandler) -> None:
        body = b'{"drip": "' + b"." * 40 + b'"}'
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for byte in body:
            if self._stopping.wait(1.0):
                break
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        handler.close_connection = True

    def _slow(self, handler: BaseHTTPRequestHandler, seconds: float) -> None:
        with self._lock:
            self._slow_now += 1
            self.peak = max(self.peak, self._slow_now)
        try:
            self._stopping.wait(seconds)
        finally:
            # Counted out before answering: the client can only send its next
            # request once it has this answer, so the peak is never overstated.
            with self._lock:
                self._slow_now -= 1
        _send(handler, 200, b'{"slow": true}')

    def _big(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/plain")
        handler.send_header("content-length", str(BIG_BODY_BYTES))
        handler.end_headers()
        handler.close_connection = True
        left = BIG_BODY_BYTES
        while left > 0 and not self._stopping.is_set():
            chunk = _FILLER[: min(left, len(_FILLER))]
            handler.wfile.write(chunk)
            left -= len(chunk)
            with self._lock:
                self.big_bytes_sent += len(chunk)


def _read_body(handler: BaseHTTPRequestHandler) -> None:
    # The aiohttp transport sends the body of a followed redirect chunked, even
    # an empty one; what is left unread would garble the next request.
    if "chunked" in handler.headers.get("transfer-encoding", "").lower():
        while size := int(handler.rfile.readline().split(b";")[0], 16):
            handler.rfile.read(size + 2)
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return
    length = int(handler.headers.get("content-length") or 0)
    if length:
        handler.rfile.read(length)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _retry_after(spec: list[str]) -> str:
    kind = spec[0]
    if kind == "seconds":
        return spec[1]
    if kind == "date":
        # Whole seconds, like the Date header the handler sends with it.
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return format_datetime(now + dt.timedelta(seconds=int(spec[1])), usegmt=True)
    if kind == "past":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        return format_datetime(past, usegmt=True)
    if kind == "huge":
        return HUGE_RETRY_AFTER
    return "when pigs fly"


# -- TLS ---------------------------------------------------------------------

Certificate = Literal["valid", "expired", "wrong-host"]


def server_context(ca: trustme.CA, kind: Certificate) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 issued by ``ca``: valid,
    expired yesterday, or valid but for another host name."""
    now = dt.datetime.now(dt.UTC)
    if kind == "expired":
        cert = ca.issue_cert(
            "127.0.0.1",
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        )
    elif kind == "wrong-host":
        cert = ca.issue_cert("wrong-host.example")
    else:
        cert = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that verifies servers against ``ca`` only."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


def self_signed_context() -> ssl.SSLContext:
    """A server context whose certificate for 127.0.0.1 signed itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="tickwork-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_file, key_file)
    return context


# -- DNS ---------------------------------------------------------------------


class StubResolver(AbstractResolver):
    """Resolves the names it is given to their addresses; any other name fails
    as an unknown host would, without asking real DNS."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self._names = names or {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self._names.get(host)
        if address is None:
            raise OSError(socket.EAI_NONAME, f"unknown host {host} (stub resolver)")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass
