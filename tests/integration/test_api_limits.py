"""The bounds on one request: each answers with an error naming it, and what
stays within it still works."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from api_helpers import BOOTSTRAP_TOKEN, api_client, create_job, graphql, wait_for
from fastapi.testclient import TestClient
from graphql.language import Lexer, Source, TokenKind
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH

SUBSCRIBE = "subscription { executionUpdates { id } }"
TOO_LARGE = f"request body too large: /graphql accepts at most {MAX_BODY_BYTES} bytes"


def _post_raw(client: TestClient, body: bytes | Iterator[bytes]):
    return client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )


def _nested(levels: int) -> str:
    """A field ``levels`` selections below the root field (of made-up fields:
    the schema has no cycle that deep, and depth is checked before the fields)."""
    return "{ " + "f { " * levels + "id" + " }" * (levels + 1)


def test_a_query_eleven_levels_deep_is_refused_naming_the_limit(
    database_url: str,
) -> None:
    """The depth limit is 10 levels below the root field; the deepest query the
    schema allows (7) runs."""
    deepest = "{ jobs { edges { node { executions { edges { node { attempts { number } } } } } } } }"  # noqa: E501
    with api_client(database_url, env="production") as client:
        ten = client.post("/graphql", json={"query": _nested(10)}).json()
        eleven = client.post("/graphql", json={"query": _nested(11)}).json()
        allowed = graphql(client, deepest)

    depth_error = "'anonymous' exceeds maximum operation depth of 10"
    assert depth_error not in [error["message"] for error in ten["errors"]]
    assert depth_error in [error["message"] for error in eleven["errors"]]
    assert eleven["data"] is None
    assert allowed == {"jobs": {"edges": []}}


def test_fifteen_aliases_run_and_sixteen_are_refused(database_url: str) -> None:
    """The alias limit is inclusive."""

    def aliased(count: int) -> str:
        return "{ " + " ".join(f"a{n}: daemons {{ id }}" for n in range(count)) + " }"

    with api_client(database_url, env="production") as client:
        allowed = graphql(client, aliased(15))
        refused = client.post("/graphql", json={"query": aliased(16)}).json()

    assert len(allowed) == 15
    assert refused["errors"][0]["message"] == "16 aliases found. Allowed: 15"


def test_a_document_of_2000_tokens_runs_and_one_more_is_refused(
    database_url: str,
) -> None:
    """Counted while parsing, so an oversized document is never validated."""
    with api_client(database_url, env="production") as client:
        allowed = graphql(client, _document_of(2000))
        refused = client.post("/graphql", json={"query": _document_of(2001)}).json()

    assert allowed["createJob"]["__typename"] == "Job"
    assert refused["errors"][0]["message"] == (
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    )


def _document_of(count: int) -> str:
    """A createJob whose payload is a list padded to ``count`` tokens in all."""

    def document(items: int) -> str:
        return (
            'mutation { createJob(input: {name: "t", schedule: {intervalSeconds: 60},'
            f" action: {{fetch: {{}}}}, payload: [{' 1' * items}]}})"
            " { __typename } }"
        )

    text = document(0)
    text = document(count - _tokens(text))
    assert _tokens(text) == count
    return text


def _tokens(text: str) -> int:
    lexer = Lexer(Source(text))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def test_a_body_at_the_limit_is_served_and_one_byte_more_is_refused(
    database_url: str,
) -> None:
    """A declared Content-Length over the limit gets 413 and a message that says
    the limit."""
    query = json.dumps({"query": "{ __typename }"}).encode()
    at_limit = query + b" " * (MAX_BODY_BYTES - len(query))
    with api_client(database_url, env="production") as client:
        served = _post_raw(client, at_limit)
        refused = _post_raw(client, at_limit + b" ")

    assert served.json() == {"data": {"__typename": "Query"}}
    assert (refused.status_code, refused.text) == (413, TOO_LARGE)


def test_a_streamed_body_is_cut_off_at_the_limit(database_url: str) -> None:
    """Chunks sent without Content-Length are counted as they arrive."""
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b" " * 65536

    with api_client(database_url, env="production") as client:
        refused = _post_raw(client, chunks())

    assert (refused.status_code, refused.text) == (413, TOO_LARGE)


def test_json_nested_thousands_deep_is_a_400_not_a_crash(database_url: str) -> None:
    """Beyond what the JSON decoder can recurse into, and just past the limit,
    the body is refused with the same message."""
    message = f"Request body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    brackets = b"[" * 100_000 + b"]" * 100_000
    over = {"query": "{ __typename }", "variables": {"v": _json_list(MAX_JSON_DEPTH)}}
    with api_client(database_url, env="production") as client:
        deep = _post_raw(client, brackets)
        just_over = client.post("/graphql", json=over)

    assert (deep.status_code, deep.text) == (400, message)
    assert (just_over.status_code, just_over.text) == (400, message)


def test_a_payload_as_deep_as_the_limit_allows_is_stored(database_url: str) -> None:
    """Within the nesting limit, a deep payload is an ordinary payload."""
    payload = _json_list(MAX_JSON_DEPTH - 3)  # under {variables: {input: {...}}}
    with api_client(database_url, env="production") as client:
        job = create_job(
            client,
            name="deep",
            schedule={"intervalSeconds": 60},
            action={"webhook": {"url": "https://hooks.example/deep"}},
            payload=payload,
        )

    assert job["payload"] == payload


def _json_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _open(client: TestClient) -> WebSocketTestSession:
    return client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"])


def _init(ws: WebSocketTestSession) -> None:
    ws.send_json({"type": "connection_init", "payload": {"token": BOOTSTRAP_TOKEN}})
    assert ws.receive_json()["type"] == "connection_ack"


def _subscribe(ws: WebSocketTestSession, operation_id: str) -> None:
    ws.send_json(
        {"id": operation_id, "type": "subscribe", "payload": {"query": SUBSCRIBE}}
    )


def test_twenty_subscriptions_per_connection_run_and_the_next_is_refused(
    database_url: str,
) -> None:
    """The 21st gets an error naming the limit; completing one makes room."""
    with api_client(database_url, env="production") as client:
        broadcaster = client.app.state.tickwork.broadcaster
        with _open(client) as ws:
            _init(ws)
            for n in range(20):
                _subscribe(ws, str(n))
            wait_for(lambda: broadcaster.subscriber_count == 20)
            _subscribe(ws, "one too many")
            refusal = ws.receive_json()
            ws.send_json({"id": "0", "type": "complete"})
            wait_for(lambda: broadcaster.subscriber_count == 19)
            _subscribe(ws, "room again")
            wait_for(lambda: broadcaster.subscriber_count == 20)
            for n in range(1, 20):
                ws.send_json({"id": str(n), "type": "complete"})
            ws.send_json({"id": "room again", "type": "complete"})
        wait_for(lambda: broadcaster.subscriber_count == 0)

    assert refusal["id"] == "one too many"
    assert refusal["type"] == "error"
    [error] = refusal["payload"]
    assert error["message"] == (
        "too many operations on this connection: at most 20 may run at once; "
        "complete one first"
    )
    assert error["extensions"] == {"code": "TOO_MANY_OPERATIONS"}


def test_a_websocket_message_nested_too_deeply_closes_as_unreadable(
    database_url: str,
) -> None:
    """The connection ends with 4400, as for any message that is not JSON; the
    server does not crash on it."""
    with api_client(database_url, env="production") as client:
        with _open(client) as ws:
            _init(ws)
            ws.send_text("[" * 100_000 + "]" * 100_000)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        healthy = client.get("/healthz")

    assert closed.value.code == 4400
    assert healthy.status_code == 200


def test_suggestions_and_introspection_stay_on_in_development(
    database_url: str,
) -> None:
    """GraphiQL needs both; production turns both off (test_api_http)."""
    with api_client(database_url, env="development") as client:
        misspelt = client.post(
            "/graphql", json={"query": "{ jbos { edges { cursor } } }"}
        )
        schema = graphql(client, "{ __schema { queryType { name } } }")

    assert "Did you mean 'jobs' or 'job'?" in misspelt.json()["errors"][0]["message"]
    assert schema["__schema"]["queryType"]["name"] == "Query"


def test_a_variable_of_the_wrong_type_stays_readable_in_production(
    database_url: str,
) -> None:
    """Not masked: it is the client's mistake, and the message says which."""
    query = "query ($after: DateTime) { previewSchedule(schedule: {intervalSeconds: 5}, after: $after) { __typename } }"  # noqa: E501
    with api_client(database_url, env="production") as client:
        body = client.post(
            "/graphql", json={"query": query, "variables": {"after": "tomorrow"}}
        ).json()

    message = body["errors"][0]["message"]
    assert message.startswith("Variable '$after' has invalid value")
    assert 'Value cannot represent a DateTime: "tomorrow"' in message


def test_a_lost_database_is_named_not_masked_in_production() -> None:
    """DATABASE_UNAVAILABLE is an expected error, in every environment."""
    with api_client("postgresql://postgres@127.0.0.1:1/x", env="production") as client:
        body = client.post("/graphql", json={"query": "{ daemons { id } }"}).json()

    assert body["errors"][0]["message"] == "database unavailable"
    assert body["errors"][0]["extensions"] == {"code": "DATABASE_UNAVAILABLE"}


def test_a_refused_request_is_logged_without_a_traceback(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad cursor is the client's mistake: one INFO line, no ERROR."""
    caplog.set_level(logging.INFO)
    with api_client(database_url, env="production") as client:
        client.post(
            "/graphql", json={"query": '{ jobs(after: "bogus") { edges { cursor } } }'}
        )

    graphql_records = [
        r for r in caplog.records if r.name.startswith(("api", "strawberry"))
    ]
    assert [r.levelno for r in graphql_records if "cursor" in r.getMessage()] == [
        logging.INFO
    ]
    assert not [r for r in graphql_records if r.levelno >= logging.ERROR]
    assert not [r for r in graphql_records if r.exc_info]


def test_an_unexpected_error_is_still_logged_with_its_traceback(
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Masked for the client, complete in the log."""
    import api.store

    async def broken(session: object) -> None:
        raise RuntimeError("a bug in listing daemons")

    monkeypatch.setattr(api.store, "list_daemons", broken)
    with api_client(database_url, env="production") as client:
        body = client.post("/graphql", json={"query": "{ daemons { id } }"}).json()

    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert body["errors"][0]["message"] == "Unexpected error."
    assert record.exc_info is not None
    assert "a bug in listing daemons" in str(record.exc_info[1])


def test_a_name_filter_holding_nul_is_refused_naming_it(database_url: str) -> None:
    """PostgreSQL text cannot hold NUL, so the filter is refused, not crashed on
    (the fuzz test found this one)."""
    query = "query ($name: String) { jobs(name: $name) { edges { cursor } } }"
    with api_client(database_url, env="production") as client:
        body = client.post(
            "/graphql", json={"query": query, "variables": {"name": "a\u0000b"}}
        ).json()

    assert body["errors"][0]["message"] == "name: must not contain NUL characters"
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
