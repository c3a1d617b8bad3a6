"""Requests per second through Tickwork's HTTP client, per transport.

Starts a minimal local sink in a process of its own and POSTs small JSON bodies
to it through ``shared.http.HttpClient`` with each transport, at several
concurrency levels. Prints one line per combination.

    .venv/bin/python -m tests.bench.http_transports [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

from shared.egress import EgressPolicy
from shared.http import HttpClient

SINK = """
import sys
from aiohttp import web

async def hook(request):
    await request.read()
    return web.Response(status=204)

app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def measure(transport: str, url: str, total: int, concurrency: int) -> float:
    client = HttpClient(
        transport=transport,  # type: ignore[arg-type]
        max_connections=concurrency,
        per_host=concurrency,  # one sink: the per-host limit would cap the test
        egress=EgressPolicy.permissive(),  # the sink is on loopback
    )
    body = b'{"job_id":"x","payload":{"n":1}}'
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            response = await client.request(
                "POST",
                url,
                time_limit=10,
                content=body,
                headers={"content-type": "application/json"},
            )
            if response.status != 204:
                raise RuntimeError(f"sink answered {response.status}")

    await client.request("POST", url, time_limit=10, content=body)  # warm up
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/hook"
        print(f"{'transport':<10} {'in flight':>9} {'requests/s':>11}")
        for concurrency in (1, 16, 64):
            for transport in ("httpx", "aiohttp"):
                rate = asyncio.run(measure(transport, url, args.requests, concurrency))
                print(f"{transport:<10} {concurrency:>9} {rate:>11,.0f}")
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
