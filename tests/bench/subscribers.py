"""Many ``executionUpdates`` subscribers in one process, for the fan-out scenario.

Opens ``--count`` WebSocket connections (graphql-transport-ws, the token in
``connection_init``), subscribes each to every execution, prints ``ready`` once
all are acknowledged, then records for every (execution id, status) how many
connections received it and ``time.time()`` of the last receipt. Each line read
on stdin is answered with one JSON line of those records.

    python -m tests.bench.subscribers --url ws://127.0.0.1:8000/graphql \\
        --count 500 --token T
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

SUBSCRIPTION = "subscription { executionUpdates { id status } }"

# (execution id, status) -> [receipts, time of the last receipt]
received: dict[str, list[float]] = {}


async def subscriber(url: str, token: str, subscribed: asyncio.Queue[None]) -> None:
    async with connect(
        url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=60
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"token": token}})
        )
        ack = json.loads(await ws.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"connection refused: {ack}")
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
            )
        )
        subscribed.put_nowait(None)
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next":
                update = message["payload"]["data"]["executionUpdates"]
                key = f"{update['id']} {update['status']}"
                entry = received.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] = max(entry[1], now)
            elif message["type"] in ("error", "complete"):
                raise RuntimeError(f"subscription ended: {message}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()

    subscribed: asyncio.Queue[None] = asyncio.Queue()
    tasks = []
    for _ in range(args.count):
        tasks.append(asyncio.create_task(subscriber(args.url, args.token, subscribed)))
        await asyncio.sleep(0.002)  # do not flood the API's accept queue
    for _ in range(args.count):
        await subscribed.get()
    print("ready", flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while await reader.readline():
        failed = [t for t in tasks if t.done()]
        if failed:
            raise failed[0].exception() or RuntimeError("a subscriber stopped")
        print(json.dumps(received), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
