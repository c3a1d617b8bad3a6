"""Helpers for the API tests: a running app, GraphQL calls, row counts, polling."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from shared.auth import create_token, new_token
from shared.models import TokenScope
from shared.settings import Settings

T = TypeVar("T")

# The write token every test app accepts from its environment.
BOOTSTRAP_TOKEN = new_token()

JOB_FIELDS = """
  id key name state stateReason nextRunAt createdAt payload maxRetries timeoutSeconds
  schedule { description intervalSeconds cron { expression timezone } at startAt endAt }
  action { webhook { url headers verifyTls followRedirects } fetch { url } }
"""

JOB_RESULT = f"""
  __typename
  ... on Job {{ {JOB_FIELDS} }}
  ... on InvalidInput {{ message errors {{ field message }} }}
  ... on NotFound {{ message id }}
"""

CREATE_JOB = f"""
mutation ($input: CreateJobInput!) {{ createJob(input: $input) {{ {JOB_RESULT} }} }}
"""


@contextmanager
def api_client(
    database_url: str,
    env: str = "development",
    *,
    scope: Literal["write", "read"] | None = "write",
) -> Iterator[TestClient]:
    """The app with its lifespan running, as a TestClient.

    Its requests carry a token of ``scope``: the bootstrap token for "write", a
    stored read token for "read", and none at all for None.
    """
    settings = Settings(
        database_url=database_url, env=env, bootstrap_token=BOOTSTRAP_TOKEN
    )
    with TestClient(create_app(settings)) as client:
        if scope == "write":
            client.headers.update(bearer(BOOTSTRAP_TOKEN))
        elif scope == "read":
            client.headers.update(bearer(stored_token(database_url, TokenScope.READ)))
        yield client


def stored_token(database_url: str, scope: TokenScope, name: str | None = None) -> str:
    """A new token in the database, as `tickwork token create` makes one."""
    name = name or f"{scope.value}-{uuid.uuid4().hex[:8]}"
    return create_token(database_url, name, scope)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def graphql(
    client: TestClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The response's data; fails the test on any GraphQL error."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body["errors"]
    assert response.status_code == 200, body
    return body["data"]


def create_job(client: TestClient, **spec: Any) -> dict[str, Any]:
    """createJob's result, whatever its type."""
    return graphql(client, CREATE_JOB, {"input": spec})["createJob"]


def interval_job(name: str = "every minute", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": {"intervalSeconds": 60},
        "action": {"webhook": {"url": "https://hooks.example/tick"}},
        **extra,
    }


def count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return row[0]


def db_now(database_url: str) -> Any:
    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT tickwork_now()").fetchone()[0]


def wait_for(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
