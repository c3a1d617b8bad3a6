"""Helpers for the API tests: a running app, GraphQL calls, row counts, polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from shared.settings import Settings

T = TypeVar("T")

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
def api_client(database_url: str, env: str = "development") -> Iterator[TestClient]:
    """The app with its lifespan running, as a TestClient."""
    app = create_app(Settings(database_url=database_url, env=env))
    with TestClient(app) as client:
        yield client


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
