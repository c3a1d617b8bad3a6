"""End to end: authentication as an operator meets it, through real processes.

The `tickwork token` commands against a real database, `tickwork api` refusing
anonymous callers over HTTP and WebSocket, and `tickwork up` running open only
when it listens on loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import websockets
from cryptography.fernet import Fernet
from websockets.exceptions import InvalidStatus

from tests.support.processes import Tickwork, poll

pytestmark = pytest.mark.e2e

JOBS = "{ jobs { edges { node { id } } } }"
TEST_JOB = "mutation { createTestJob { __typename } }"
TOKEN = re.compile(r"tw_[A-Za-z0-9_-]{40}")
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


@pytest.fixture
def system(database_url: str, tmp_path: Path) -> Iterator[Tickwork]:
    """Tickwork's processes for one test, stopped at its end."""
    tickwork = Tickwork(database_url, tmp_path, bootstrap_token="")
    try:
        yield tickwork
    finally:
        tickwork.stop()


def post(system: Tickwork, query: str, token: str | None = None, **headers: str):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(
        f"{system.base_url}/graphql", json={"query": query}, headers=headers, timeout=10
    )


def code(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def columns(line: str) -> list[str]:
    """The cells of a `tickwork token list` line (two spaces or more apart)."""
    return re.split(r"\s{2,}", line.strip())


def log_of(system: Tickwork, name: str) -> str:
    return (system.log_dir / name).read_text()


def test_token_commands_make_list_and_revoke_tokens_that_the_api_honours(
    system: Tickwork, database_url: str
) -> None:
    system.start("api")
    system.wait_ready(timeout=60)

    made = system.cli("token", "create", "--name", "ci", "--scope", "read")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert TOKEN.fullmatch(token), made.stdout
    assert "shown only this once" in made.stderr

    with psycopg.connect(database_url) as connection:
        stored = connection.execute(
            "SELECT api_tokens::text FROM api_tokens"
        ).fetchall()
    assert len(stored) == 1 and token not in stored[0][0]

    assert post(system, JOBS, token).json() == {"data": {"jobs": {"edges": []}}}
    refused = post(system, TEST_JOB, token)
    assert (refused.status_code, code(refused)) == (403, "FORBIDDEN")

    listed = system.cli("token", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = (columns(line) for line in listed.stdout.splitlines())
    assert header == ["NAME", "SCOPE", "CREATED", "LAST USED", "REVOKED", "ID"]
    name, scope, created, last_used, revoked, token_id = row
    assert (name, scope, revoked) == ("ci", "read", "-")
    assert DATE.fullmatch(created)
    # The request above was the token's first use, which is always recorded.
    assert DATE.fullmatch(last_used)
    assert token not in listed.stdout

    again = system.cli("token", "create", "--name", "ci", "--scope", "write")
    assert again.returncode == 1
    assert "a token named 'ci' exists" in again.stderr

    revoked = system.cli("token", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    after = post(system, JOBS, token)
    assert (after.status_code, code(after)) == (401, "UNAUTHENTICATED")
    assert "revoked" in after.json()["errors"][0]["message"]

    twice = system.cli("token", "revoke", token_id)
    assert twice.returncode == 0 and "revoked already" in twice.stdout
    [_, row] = system.cli("token", "list").stdout.splitlines()
    assert DATE.fullmatch(columns(row)[4])


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("token", "revoke", "nobody"), "no token named 'nobody'"),
        (("token", "create", "--name", "has space", "--scope", "read"), "token name"),
        (("token", "create", "--name", "x", "--scope", "admin"), "invalid choice"),
    ],
)
def test_token_commands_say_what_is_wrong(
    system: Tickwork, args: tuple[str, ...], complaint: str
) -> None:
    done = system.cli(*args)

    assert done.returncode in (1, 2)
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_tickwork_api_refuses_anonymous_callers_over_http_and_websocket(
    system: Tickwork,
) -> None:
    """No bootstrap token and none stored: the API starts, says how to make a
    token, and refuses whoever calls without one."""
    system.start("api")
    system.wait_ready(timeout=60)

    anonymous = post(system, JOBS)
    assert (anonymous.status_code, code(anonymous)) == (401, "UNAUTHENTICATED")
    session = httpx.get(f"{system.base_url}/auth/session", timeout=10).json()
    assert session == {
        "open": False,
        "authenticated": False,
        "scope": None,
        "name": None,
    }
    assert "tickwork token create" in poll(lambda: log_of(system, "api-0.log"), 10)

    token = system.cli("token", "create", "--name", "page", "--scope", "write").stdout
    url = f"ws://127.0.0.1:{system.port}/graphql"
    own = f"http://127.0.0.1:{system.port}"
    with pytest.raises(InvalidStatus) as foreign:
        asyncio.run(ws_query(url, "https://evil.example", token.strip()))
    assert foreign.value.response.status_code == 403
    assert asyncio.run(ws_query(url, own, token.strip())) == {
        "data": {"jobs": {"edges": []}}
    }
    with pytest.raises(websockets.ConnectionClosed) as closed:
        asyncio.run(ws_query(url, own, None))
    assert closed.value.rcvd.code == 4403


async def ws_query(url: str, origin: str, token: str | None) -> dict:
    """One query over graphql-transport-ws, as a browser on ``origin`` sends it.

    It always connects to this machine, whatever host name ``url`` gives.
    """
    async with websockets.connect(
        url,
        origin=origin,
        subprotocols=["graphql-transport-ws"],
        open_timeout=10,
        host="127.0.0.1",
    ) as ws:
        payload = {"token": token} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        message = {"id": "1", "type": "subscribe", "payload": {"query": JOBS}}
        await ws.send(json.dumps(message))
        return json.loads(await ws.recv())["payload"]


@pytest.mark.parametrize(
    ("command", "settings", "complaint"),
    [
        (["shared.cli", "api"], {}, "`tickwork api` always requires a token"),
        (["api"], {"TICKWORK_HOST": "0.0.0.0"}, "refused with TICKWORK_HOST=0.0.0.0"),
        (
            ["api"],
            {
                "TICKWORK_ENV": "production",
                "TICKWORK_SECRET_KEY": Fernet.generate_key().decode(),
            },
            "refused in production",
        ),
    ],
)
def test_the_api_will_not_start_open_outside_local_development(
    system: Tickwork, command: list[str], settings: dict[str, str], complaint: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command],
        env={**system.env, "TICKWORK_AUTH": "off", **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_up_on_loopback_is_open_to_local_callers_and_says_so(
    system: Tickwork, database_url: str
) -> None:
    system.start("up")
    system.wait_ready(timeout=60)

    session = httpx.get(f"{system.base_url}/auth/session", timeout=10).json()
    assert session == {
        "open": True,
        "authenticated": True,
        "scope": "write",
        "name": None,
    }
    created = post(system, TEST_JOB)
    assert created.json() == {"data": {"createTestJob": {"__typename": "Job"}}}
    # A request relayed by a proxy may come from anywhere: it needs a token.
    proxied = post(system, JOBS, **{"X-Forwarded-For": "203.0.113.9"})
    assert (proxied.status_code, code(proxied)) == (401, "UNAUTHENTICATED")
    # A page elsewhere whose host name now resolves here (DNS rebinding).
    rebound = f"evil.example:{system.port}"
    refused = post(system, JOBS, Host=rebound, Origin=f"http://{rebound}")
    assert refused.status_code == 403
    assert f"Host {rebound!r} refused" in refused.json()["error"]
    with pytest.raises(InvalidStatus) as handshake:
        asyncio.run(ws_query(f"ws://{rebound}/graphql", f"http://{rebound}", None))
    assert handshake.value.response.status_code == 403
    assert "AUTHENTICATION IS OFF" in log_of(system, "up-0.log")

    with psycopg.connect(database_url) as connection:
        actors = connection.execute("SELECT actor, action FROM audit_events").fetchall()
    assert actors == [("open", "createTestJob")]


def test_up_on_another_address_keeps_authentication_on(
    database_url: str, tmp_path: Path
) -> None:
    system = Tickwork(database_url, tmp_path, bootstrap_token="", host="0.0.0.0")
    try:
        system.start("up")
        system.wait_ready(timeout=60)

        anonymous = post(system, JOBS)
        session = httpx.get(f"{system.base_url}/auth/session", timeout=10).json()
    finally:
        system.stop()

    assert (anonymous.status_code, code(anonymous)) == (401, "UNAUTHENTICATED")
    assert session["open"] is False
    assert "not a loopback address" in log_of(system, "up-0.log")
