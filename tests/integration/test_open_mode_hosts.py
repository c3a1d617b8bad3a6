"""With authentication off, only requests addressed to this machine are served.

A page on another site can point its own host name at 127.0.0.1 (DNS
rebinding); the browser then calls the open API from this machine, but with
that site's name in Host. These tests send such requests through the app as
`tickwork up` runs it, from a loopback caller, over HTTP and WebSocket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from api.app import create_app
from shared.settings import Settings
from tests.integration.api_helpers import api_client, count_rows

JOBS = "{ jobs(first: 1) { edges { node { id } } } }"
TEST_JOB = "mutation { createTestJob { __typename } }"
LOCAL_HOSTS = ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2"]
FOREIGN_HOSTS = [
    "evil.example:8000",
    "evil.example",
    "127.0.0.1.evil.example:8000",
    "localhost.evil.example",
    "evil.example@127.0.0.1:8000",
    "10.0.0.5:8000",
]


@pytest.fixture
def open_client(database_url: str) -> Iterator[TestClient]:
    """The app open as under `tickwork up`, called from this machine."""
    settings = Settings(
        database_url=database_url, auth="off", host="127.0.0.1", env="development"
    )
    with TestClient(
        create_app(settings),
        base_url="http://127.0.0.1:8000",
        client=("127.0.0.1", 50000),
    ) as client:
        yield client


def host(name: str) -> dict[str, str]:
    return {"Host": name, "Origin": f"http://{name}"}


@pytest.mark.parametrize("name", FOREIGN_HOSTS)
def test_a_request_for_another_host_name_is_refused_before_it_is_served(
    open_client: TestClient, database_url: str, name: str
) -> None:
    query = open_client.post("/graphql", json={"query": JOBS}, headers=host(name))
    mutation = open_client.post(
        "/graphql", json={"query": TEST_JOB}, headers=host(name)
    )
    session = open_client.get("/auth/session", headers=host(name))

    for refused in (query, mutation, session):
        assert refused.status_code == 403
        message = refused.json()["error"]
        assert f"Host {name!r} refused: authentication is off" in message
        assert "localhost, 127.0.0.1 or [::1]" in message
    assert count_rows(database_url, "jobs") == 0


@pytest.mark.parametrize("name", LOCAL_HOSTS)
def test_a_request_for_a_loopback_name_or_address_is_served(
    open_client: TestClient, name: str
) -> None:
    query = open_client.post("/graphql", json={"query": JOBS}, headers=host(name))
    session = open_client.get("/auth/session", headers=host(name))

    assert query.json() == {"data": {"jobs": {"edges": []}}}
    assert session.json()["open"] is True


@pytest.mark.parametrize("name", ["evil.example:8000", "localhost.evil.example"])
def test_a_websocket_handshake_for_another_host_name_is_refused(
    open_client: TestClient, name: str
) -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        open_client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=host(name)
        ),
    ):
        pass

    assert refused.value.status_code == 403
    assert f"Host {name!r} refused" in refused.value.json()["error"]


@pytest.mark.parametrize("name", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"])
def test_a_websocket_for_a_loopback_name_or_address_subscribes(
    open_client: TestClient, name: str
) -> None:
    with open_client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"], headers=host(name)
    ) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": JOBS}})
        result = ws.receive_json()

    assert result["payload"] == {"data": {"jobs": {"edges": []}}}


def test_with_authentication_on_any_host_name_is_served(database_url: str) -> None:
    """Tokens protect the API then, and proxies in front send their own names."""
    with api_client(database_url) as client:
        response = client.post(
            "/graphql", json={"query": JOBS}, headers={"Host": "tickwork.example"}
        )

    assert response.json() == {"data": {"jobs": {"edges": []}}}
