"""A webhook receiver for the benchmarks, run as a process of its own.

It answers every POST with ``204 No Content`` (after ``--delay`` seconds, for a
slow target), keeps connections alive, and records for each request the
``Idempotency-Key`` header (Tickwork's execution id) and ``time.time()`` at the
moment the whole request was read. ``GET /_records?since=N`` returns the records
from the N-th on as JSON ``[[key, time], ...]``, ``GET /_count`` how many. A
plain asyncio protocol, so the sink costs little CPU on the two cores it shares
with what it measures.

    python -m tests.bench.sink --port 18090 [--host 127.0.0.1 ...] [--delay 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"

records: list[tuple[str, float]] = []


class Receiver(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(head[0], headers)

    def handle(self, request_line: str, headers: dict[str, str]) -> None:
        method, target, _ = request_line.split(" ", 2)
        if method == "GET" and target.startswith("/_records"):
            since = int(parse_qs(urlsplit(target).query).get("since", ["0"])[0])
            body = json.dumps(records[since:]).encode()
        elif method == "GET" and target == "/_count":
            body = str(len(records)).encode()
        else:
            body = None
        if body is not None:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        records.append((headers.get("idempotency-key", ""), time.time()))
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.answer)
        else:
            self.transport.write(NO_CONTENT)

    def answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(NO_CONTENT)


async def serve(hosts: list[str], port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    for host in hosts:
        await loop.create_server(lambda: Receiver(delay), host, port, backlog=2048)
    parent = os.getppid()
    # Never outlive the benchmark that started it.
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on but time
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", action="append", default=[])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.host or ["127.0.0.1"], args.port, args.delay))


if __name__ == "__main__":
    main()
