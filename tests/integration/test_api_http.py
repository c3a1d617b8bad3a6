"""The plain HTTP routes, GraphiQL offline, and what production hides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_helpers import api_client

import api.app
import api.store
from api.quotes import QUOTES

INTROSPECTION = "{ __schema { queryType { name } } }"


def test_healthz_is_ok(database_url: str) -> None:
    """/healthz answers 200 with status ok."""
    with api_client(database_url) as client:
        response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ok_when_the_database_answers(database_url: str) -> None:
    """/readyz answers 200 while SELECT 1 works."""
    with api_client(database_url) as client:
        response = client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    """/readyz answers 503 with the reason when nothing listens at the URL."""
    with api_client("postgresql://postgres@127.0.0.1:1/x") as client:
        response = client.get("/readyz")
        health = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reason": "database unavailable",
    }
    assert health.status_code == 200


def test_quote_returns_one_of_the_built_in_quotes(database_url: str) -> None:
    """/quote answers a quote with content and author."""
    with api_client(database_url) as client:
        quote = client.get("/quote").json()

    assert quote in [dict(q) for q in QUOTES]
    assert 15 <= len(QUOTES) <= 25


def test_graphiql_loads_nothing_from_the_internet(database_url: str) -> None:
    """In development, the GraphiQL page points every asset at /vendor/."""
    with api_client(database_url) as client:
        response = client.get("/graphql", headers={"Accept": "text/html"})

    page = response.text
    assert response.status_code == 200
    assert "https://" not in page
    assert re.findall(r'(?:src|href)="(?!/vendor/)[^"]+\.(?:js|css)"', page) == []
    assert '"/vendor/graphiql@3.8.3/graphiql.min.js"' in page
    assert 'integrity="sha384-' in page


def test_production_turns_graphiql_off(database_url: str) -> None:
    """In production, GET /graphql for HTML finds no IDE."""
    with api_client(database_url, env="production") as client:
        response = client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 404


def test_production_disables_introspection(database_url: str) -> None:
    """In production an introspection query is refused; in development it works."""
    with api_client(database_url, env="production") as client:
        refused = client.post("/graphql", json={"query": INTROSPECTION}).json()
    with api_client(database_url) as client:
        allowed = client.post("/graphql", json={"query": INTROSPECTION}).json()

    assert "introspection" in refused["errors"][0]["message"].lower()
    assert allowed["data"]["__schema"]["queryType"]["name"] == "Query"


def test_production_hides_field_suggestions(database_url: str) -> None:
    """A misspelt field gets no 'Did you mean' hint in production."""
    with api_client(database_url, env="production") as client:
        body = client.post("/graphql", json={"query": "{ jbos { edges { cursor } } }"})

    message = body.json()["errors"][0]["message"]
    assert "jbos" in message
    assert "Did you mean" not in message


def test_production_masks_unexpected_errors(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal exception reaches the client as 'Unexpected error.' only."""

    async def broken(session: object) -> None:
        raise RuntimeError("password=hunter2")

    monkeypatch.setattr(api.store, "list_daemons", broken)
    with api_client(database_url, env="production") as client:
        body = client.post("/graphql", json={"query": "{ daemons { id } }"}).json()

    assert body["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in str(body)


def test_a_body_that_is_not_utf8_is_refused_with_400(database_url: str) -> None:
    """In production, with a valid token, JSON whose bytes are not UTF-8 is the
    client's mistake: 400 saying so, not a server error."""
    with api_client(database_url, env="production") as client:
        response = client.post(
            "/graphql",
            content=b'{"query":"\xff"}',
            headers={"content-type": "application/json"},
        )

    assert response.status_code == 400, response.text
    assert "not valid UTF-8" in response.text


def test_more_than_fifteen_aliases_are_refused(database_url: str) -> None:
    """A query with sixteen aliases is rejected before it runs."""
    query = "{ " + " ".join(f"a{n}: daemons {{ id }}" for n in range(16)) + " }"
    with api_client(database_url) as client:
        body = client.post("/graphql", json={"query": query}).json()

    assert body["errors"][0]["message"] == "16 aliases found. Allowed: 15"


def test_without_a_web_build_the_root_says_how_to_build_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no web/dist, GET / explains that `make run` builds the page."""
    monkeypatch.setattr(api.app, "WEB_DIST", tmp_path / "missing")
    with api_client(database_url) as client:
        response = client.get("/")

    assert response.status_code == 200
    assert "make run" in response.text


def test_the_web_build_is_served_without_shadowing_the_api(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """web/dist is served at /, its vendor files too, and /healthz still wins."""
    (tmp_path / "vendor" / "graphiql@3.8.3").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<h1>Tickwork page</h1>")
    (tmp_path / "healthz").write_text("a file, not the route")
    (tmp_path / "vendor" / "graphiql@3.8.3" / "graphiql.min.js").write_text("//js")
    monkeypatch.setattr(api.app, "WEB_DIST", tmp_path)
    with api_client(database_url) as client:
        page = client.get("/")
        asset = client.get("/vendor/graphiql@3.8.3/graphiql.min.js")
        health = client.get("/healthz")

    assert "Tickwork page" in page.text
    assert asset.text == "//js"
    assert health.json() == {"status": "ok"}
