"""Helpers for the browser tests: signing in, names, screenshots, GraphQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import Tickwork

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def has_auth(system: Tickwork) -> bool:
    """Whether the server offers sessions (GET /auth/session)."""
    return httpx.get(f"{system.base_url}/auth/session", timeout=5).status_code != 404


def sign_in(page: Any, system: Tickwork, token: str | None = None) -> None:
    """Give the page's browser profile a session, as the sign-in form would."""
    if not has_auth(system):
        return  # a server without authentication: everyone may do everything
    response = page.request.post(
        f"{system.base_url}/auth/session",
        data={"token": token or system.token},
        headers={"Origin": system.base_url},
    )
    assert response.status == 204, response.text()


def graphql(system: Tickwork, query: str, **variables: Any) -> dict[str, Any]:
    """Call the API as a script would, with the processes' write token."""
    response = httpx.post(
        f"{system.base_url}/graphql",
        json={"query": query, "variables": variables},
        headers=getattr(system, "headers", {}),
        timeout=10,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


CREATE = """
mutation ($input: CreateJobInput!) {
  createJob(input: $input) {
    __typename
    ... on Job { id name }
    ... on InvalidInput { message errors { field message } }
  }
}
"""


def create_job(system: Tickwork, **spec: Any) -> dict[str, Any]:
    result = graphql(system, CREATE, input=spec)["createJob"]
    assert result["__typename"] == "Job", result
    return result


def screenshot(subject: Any, name: str, **options: Any) -> Path:
    """Save a screenshot of a page or one element of it under
    test-output/screenshots/, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    subject.screenshot(path=str(path), **options)
    return path


def unique(name: str) -> str:
    """A job name no other test of the module uses."""
    return f"{name} {uuid.uuid4().hex[:6]}"
