"""Authentication and authorization over HTTP, with the session cookie, and over
WebSocket, against the real app and a real database."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from shared.auth import AuthSettingsError, revoke_token
from shared.models import TokenScope
from shared.settings import Settings
from tests.integration.api_helpers import (
    CREATE_JOB,
    api_client,
    bearer,
    count_rows,
    interval_job,
    stored_token,
)

JOBS = "{ jobs { edges { node { id } } } }"
ORIGIN = {"Origin": "http://testserver"}
FOREIGN = {"Origin": "https://evil.example"}


def post(client, query: str, variables: dict | None = None, **kwargs):
    return client.post(
        "/graphql", json={"query": query, "variables": variables}, **kwargs
    )


def create(client, **kwargs):
    return post(client, CREATE_JOB, {"input": interval_job()}, **kwargs)


def error_code(response) -> str:
    [error] = response.json()["errors"]
    return error["extensions"]["code"]


def test_a_request_without_a_token_is_refused_and_changes_nothing(
    database_url: str,
) -> None:
    """No token: 401 with a GraphQL error coded UNAUTHENTICATED, for queries and
    mutations alike, and the mutation stores nothing."""
    with api_client(database_url, scope=None) as client:
        query = post(client, JOBS)
        mutation = create(client)
        by_get = client.get("/graphql", params={"query": JOBS})

    for response in (query, mutation, by_get):
        assert response.status_code == 401
        assert error_code(response) == "UNAUTHENTICATED"
        assert response.json()["data"] is None
        assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in query.json()["errors"][0]["message"]
    assert count_rows(database_url, "jobs") == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer tw_not-a-token-we-made", "unknown token"),
        ("Basic dXNlcjpwYXNz", "expected 'Bearer <token>'"),
        ("Bearer", "expected 'Bearer <token>'"),
    ],
)
def test_an_unknown_token_or_another_scheme_is_refused(
    database_url: str, header: str, message: str
) -> None:
    with api_client(database_url, scope=None) as client:
        response = post(client, JOBS, headers={"Authorization": header})

    assert response.status_code == 401
    assert message in response.json()["errors"][0]["message"]


def test_a_read_token_queries_but_cannot_mutate(database_url: str) -> None:
    """A read token gets data; every mutation is FORBIDDEN (403), stores nothing."""
    with api_client(database_url, scope="read") as client:
        query = post(client, JOBS)
        mutation = create(client)
        test_job = post(client, "mutation { createTestJob { __typename } }")

    assert query.status_code == 200
    assert query.json() == {"data": {"jobs": {"edges": []}}}
    for response in (mutation, test_job):
        assert response.status_code == 403
        assert error_code(response) == "FORBIDDEN"
        assert "may only read" in response.json()["errors"][0]["message"]
    assert count_rows(database_url, "jobs") == 0


def test_refusals_stay_readable_in_production(database_url: str) -> None:
    """Production masks unexpected errors, not these: the caller must learn why."""
    with api_client(database_url, env="production", scope="read") as client:
        mutation = create(client)
        anonymous = post(client, JOBS, headers={"Authorization": "Bearer tw_nope"})

    assert (mutation.status_code, error_code(mutation)) == (403, "FORBIDDEN")
    assert "may only read" in mutation.json()["errors"][0]["message"]
    assert (anonymous.status_code, error_code(anonymous)) == (401, "UNAUTHENTICATED")
    assert anonymous.json()["errors"][0]["message"] == "unknown token"


def test_a_token_that_cannot_be_checked_gets_database_unavailable() -> None:
    """With the database away, a stored token cannot be looked up: 503 and the
    same code every other operation gets then, not a traceback."""
    away = "postgresql://postgres@127.0.0.1:1/tickwork"
    settings = Settings(database_url=away, env="production")
    with TestClient(create_app(settings)) as client:
        response = post(client, JOBS, headers=bearer("tw_" + "x" * 40))

    assert response.status_code == 503
    assert response.json()["errors"] == [
        {
            "message": "database unavailable",
            "extensions": {"code": "DATABASE_UNAVAILABLE"},
        }
    ]


def test_a_stored_write_token_mutates_until_it_is_revoked(database_url: str) -> None:
    token = stored_token(database_url, TokenScope.WRITE, "deployer")
    with api_client(database_url, scope=None) as client:
        before = create(client, headers=bearer(token))
        revoke_token(database_url, "deployer")
        after = create(client, headers=bearer(token))
        query = post(client, JOBS, headers=bearer(token))

    assert before.json()["data"]["createJob"]["__typename"] == "Job"
    for response in (after, query):
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"] == (
            "token 'deployer' has been revoked"
        )
    assert count_rows(database_url, "jobs") == 1


def test_only_a_hash_of_the_token_is_stored(database_url: str) -> None:
    token = stored_token(database_url, TokenScope.READ, "grafana")

    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT api_tokens::text, token_hash FROM api_tokens"
        ).fetchone()
    everything, token_hash = row
    assert token.startswith("tw_") and len(token) >= 43
    assert token not in everything
    assert token[3:] not in everything
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()


def test_last_use_is_written_once_a_minute_not_on_every_request(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.READ, "dashboard")

    def last_used() -> object:
        with psycopg.connect(database_url) as connection:
            sql = "SELECT last_used_at FROM api_tokens WHERE name = 'dashboard'"
            return connection.execute(sql).fetchone()[0]

    assert last_used() is None
    with api_client(database_url, scope=None) as client:
        assert post(client, JOBS, headers=bearer(token)).status_code == 200
        first = last_used()
        # The database clock moves between requests, so a write per request
        # would show as a later time.
        for _ in range(5):
            assert post(client, JOBS, headers=bearer(token)).status_code == 200
        later = last_used()

    assert first is not None
    assert later == first


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.WRITE, "alice")
    with api_client(database_url, scope=None) as client:
        anonymous = client.get("/auth/session").json()
        signed_in = client.post("/auth/session", json={"token": token})
        cookie = signed_in.headers["set-cookie"]
        state = client.get("/auth/session").json()
        data = post(client, JOBS, headers=ORIGIN)
        signed_out = client.delete("/auth/session", headers=ORIGIN)
        after = client.get("/auth/session").json()
        refused = post(client, JOBS, headers=ORIGIN)

    assert anonymous == {
        "open": False,
        "authenticated": False,
        "scope": None,
        "name": None,
    }
    assert signed_in.status_code == 204
    assert cookie.startswith("tickwork_session=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would vanish
    assert state == {
        "open": False,
        "authenticated": True,
        "scope": "write",
        "name": "alice",
    }
    assert data.status_code == 200, data.text
    assert signed_out.status_code == 204
    assert after["authenticated"] is False
    assert refused.status_code == 401


def test_the_cookie_is_secure_when_the_request_came_over_https(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.READ, "bob")
    with api_client(database_url, scope=None) as client:
        client.base_url = "https://testserver"
        response = client.post("/auth/session", json={"token": token})

    assert response.status_code == 204
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "body", [{"token": "tw_wrong"}, {"token": ""}, {"nothing": 1}, "not json"]
)
def test_signing_in_with_a_bad_token_is_refused_with_a_json_error(
    database_url: str, body: object
) -> None:
    with api_client(database_url, scope=None) as client:
        if isinstance(body, str):
            response = client.post("/auth/session", content=body)
        else:
            response = client.post("/auth/session", json=body)

    assert response.status_code in (400, 401)
    assert response.json()["error"]
    assert "set-cookie" not in response.headers


def test_a_cookie_post_from_another_origin_is_refused(database_url: str) -> None:
    """CSRF: with the cookie, a POST needs our own Origin (or Referer)."""
    with api_client(database_url, scope=None) as client:
        client.post("/auth/session", json={"token": _write_token(database_url)})
        foreign = create(client, headers=FOREIGN)
        no_origin = create(client)
        foreign_referer = create(
            client, headers={"Referer": "https://evil.example/page"}
        )
        own_referer = create(client, headers={"Referer": "http://testserver/"})
        own_origin = create(client, headers=ORIGIN)
        sign_out = client.delete("/auth/session", headers=FOREIGN)

    for response in (foreign, no_origin, foreign_referer):
        assert response.status_code == 403
        assert error_code(response) == "FORBIDDEN"
        assert "cross-site request refused" in response.json()["errors"][0]["message"]
    assert (
        "https://evil.example is not http://testserver"
        in (foreign.json()["errors"][0]["message"])
    )
    assert own_referer.json()["data"]["createJob"]["__typename"] == "Job"
    assert own_origin.json()["data"]["createJob"]["__typename"] == "Job"
    assert sign_out.status_code == 403
    assert count_rows(database_url, "jobs") == 2


def test_a_bearer_token_needs_no_origin(database_url: str) -> None:
    """A token in the header is not ambient, so another origin cannot abuse it."""
    with api_client(database_url) as client:
        response = create(client, headers=FOREIGN)

    assert response.json()["data"]["createJob"]["__typename"] == "Job"


def test_graphiql_loads_without_a_token_and_its_queries_say_why_they_fail(
    database_url: str,
) -> None:
    with api_client(database_url, scope=None) as client:
        page = client.get("/graphql", headers={"Accept": "text/html"})
        query = post(client, "{ __typename }", headers=ORIGIN)
        client.post("/auth/session", json={"token": _write_token(database_url)})
        signed_in = post(client, "{ __typename }", headers=ORIGIN)

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert query.status_code == 401
    assert query.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert signed_in.json() == {"data": {"__typename": "Query"}}


def test_a_foreign_origin_websocket_handshake_is_refused(database_url: str) -> None:
    """Cross-site WebSocket hijacking: a page elsewhere cannot use our cookie.

    The handshake is closed before it is accepted, which a server answers with
    HTTP 403 (the real-server test in tests/e2e sees that status).
    """
    with api_client(database_url, scope=None) as client:
        client.post("/auth/session", json={"token": _write_token(database_url)})
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(
                "/graphql", subprotocols=["graphql-transport-ws"], headers=FOREIGN
            ),
        ):
            pass

    assert refused.value.code == 1008


def test_a_websocket_authenticates_by_its_connection_init_token(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.READ, "watcher")
    with (
        api_client(database_url, scope=None) as client,
        client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=ORIGIN
        ) as ws,
    ):
        ws.send_json({"type": "connection_init", "payload": {"token": token}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": JOBS}})
        query = answer(ws, "1")
        ws.send_json(
            {
                "id": "2",
                "type": "subscribe",
                "payload": {"query": "mutation { createTestJob { __typename } }"},
            }
        )
        mutation = answer(ws, "2")

    assert query["payload"] == {"data": {"jobs": {"edges": []}}}
    assert mutation["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    assert count_rows(database_url, "jobs") == 0


def test_a_signed_in_page_subscribes_with_its_cookie_alone(database_url: str) -> None:
    """GraphiQL sends no token in connection_init: the cookie is enough."""
    with api_client(database_url, scope=None) as client:
        client.post("/auth/session", json={"token": _write_token(database_url)})
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=ORIGIN
        ) as ws:
            ws.send_json({"type": "connection_init", "payload": {}})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": JOBS}})
            result = answer(ws, "1")

    assert result["payload"] == {"data": {"jobs": {"edges": []}}}


@pytest.mark.parametrize("payload", [{}, {"token": "tw_made_up"}, {"token": 42}])
def test_a_websocket_without_a_valid_token_is_closed(
    database_url: str, payload: dict
) -> None:
    with (
        api_client(database_url, scope=None) as client,
        client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"]
        ) as ws,
    ):
        ws.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()

    assert closed.value.code == 4403


def test_an_open_websocket_is_refused_after_its_token_is_revoked(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.READ, "short-lived")
    with (
        api_client(database_url, scope=None) as client,
        client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"]
        ) as ws,
    ):
        ws.send_json({"type": "connection_init", "payload": {"token": token}})
        assert ws.receive_json()["type"] == "connection_ack"
        revoke_token(database_url, "short-lived")
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": JOBS}})
        refused = answer(ws, "1")

    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in refused["payload"][0]["message"]


@pytest.mark.parametrize(
    ("host", "env", "complaint"),
    [
        ("0.0.0.0", "development", "TICKWORK_HOST=0.0.0.0"),
        ("192.0.2.7", "development", "loopback"),
        ("127.0.0.1", "production", "refused in production"),
    ],
)
def test_authentication_cannot_be_turned_off_beyond_local_development(
    database_url: str, host: str, env: str, complaint: str
) -> None:
    settings = Settings(database_url=database_url, auth="off", host=host, env=env)

    with pytest.raises(AuthSettingsError, match=complaint):
        create_app(settings)


def test_a_short_bootstrap_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(bootstrap_token="changeme")


def answer(ws, operation: str) -> dict:
    """The next result or error of one graphql-transport-ws operation."""
    while True:
        message = ws.receive_json()
        if message.get("id") == operation and message["type"] in ("next", "error"):
            return message


def _write_token(database_url: str) -> str:
    return stored_token(database_url, TokenScope.WRITE)
