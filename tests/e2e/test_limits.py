"""End to end: the request limits as a real `tickwork api` behind uvicorn applies
them, where bodies arrive in chunks and WebSocket frames have a size."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from api.limits import MAX_BODY_BYTES
from tests.support.processes import Tickwork

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Tickwork]:
    tickwork = Tickwork(database_url, tmp_path)
    tickwork.start("api")
    try:
        tickwork.wait_ready()
        yield tickwork
    finally:
        tickwork.stop()


def test_a_chunked_body_over_the_limit_gets_413_and_the_api_serves_on(
    api: Tickwork,
) -> None:
    """Sent with Transfer-Encoding: chunked, so no Content-Length gives it away."""

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    refused = httpx.post(
        f"{api.base_url}/graphql",
        content=chunks(),
        headers={**api.headers, "Content-Type": "application/json"},
        timeout=10,
    )

    assert refused.status_code == 413
    assert refused.text == (
        f"request body too large: /graphql accepts at most {MAX_BODY_BYTES} bytes"
    )
    assert api.graphql("{ __typename }") == {"__typename": "Query"}


def test_a_websocket_message_over_the_limit_closes_the_connection(
    api: Tickwork,
) -> None:
    """uvicorn refuses the frame with 1009 (message too big) before it is read."""
    code = asyncio.run(_send_one_message(api, "x" * (MAX_BODY_BYTES + 1)))

    assert code == 1009


async def _send_one_message(api: Tickwork, padding: str) -> int | None:
    url = f"ws://127.0.0.1:{api.port}/graphql"
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], open_timeout=10
    ) as ws:
        init = {"type": "connection_init", "payload": {"token": api.token}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = {"query": "{ __typename }", "variables": {"pad": padding}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None
