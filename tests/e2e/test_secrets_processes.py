"""Signatures and secrets with real `tickwork` processes.

`tickwork api` and `tickwork daemon` run as subprocesses, logging at DEBUG; a
job full of secrets fails, is retried and fails again at a local target, which
checks every signature with the standardwebhooks package. Then the processes'
whole output is searched for the secrets. `tickwork up` is started twice on one
data directory: it makes a key the first time and reuses it the second.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from shared.migrate import upgrade
from tests.support.processes import Tickwork, poll
from tests.support.target import Target

pytestmark = pytest.mark.e2e

AUTHORIZATION = "Bearer e2e-auth-secret-31"
PIN = "e2e-pin-secret-77"
QUERY_TOKEN = "e2e-query-token-05"

CREATE = """
mutation ($input: CreateJobInput!) {
  createJob(input: $input) {
    __typename
    ... on Job { id signingSecret }
    ... on InvalidInput { errors { field message } }
  }
}
"""
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"
STATUS = """
query ($id: ID!) {
  job(id: $id) { executions(first: 1) { edges { node { status error } } } }
}
"""


def spec(url: str, **webhook: object) -> dict[str, object]:
    """A webhook job that runs when triggered, with one retry."""
    return {
        "name": "e2e secrets",
        "schedule": {"intervalSeconds": 3600, "startAt": "2099-01-01T00:00:00Z"},
        "action": {"webhook": {"url": url, **webhook}},
        "maxRetries": 1,
    }


def test_real_processes_sign_every_attempt_and_log_no_secret(
    database_url: str, tmp_path: Path, target: Target
) -> None:
    """Both attempts verify and share their webhook-id; no output line holds a
    secret, the signing secret or the URL's token."""
    upgrade(database_url)
    key = Fernet.generate_key().decode()
    system = Tickwork(
        database_url,
        tmp_path,
        secret_key=key,
        log_level="DEBUG",
        retry_base_seconds="0.2",
    )
    system.start("api")
    system.start("daemon")
    try:
        system.wait_ready()
        url = target.url(f"/status/503/hook?token={QUERY_TOKEN}")
        job = system.graphql(
            CREATE,
            input=spec(
                url,
                headers={"Authorization": AUTHORIZATION},
                secretHeaders={"X-Pin": PIN},
            ),
        )["createJob"]
        assert job["__typename"] == "Job", job
        system.graphql(TRIGGER, id=job["id"])
        first, second = target.wait_for(2, timeout=30)

        def final() -> dict[str, object] | None:
            edges = system.graphql(STATUS, id=job["id"])["job"]["executions"]["edges"]
            node = edges[0]["node"] if edges else None
            return node if node and node["status"] == "FAILED" else None

        execution = poll(final, timeout=30)
    finally:
        system.stop()

    secret = job["signingSecret"]
    for request in (first, second):
        assert Webhook(secret).verify(request.body, request.headers)
        assert request.headers["authorization"] == AUTHORIZATION
        assert request.headers["x-pin"] == PIN
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert execution["error"].startswith(f"POST {target.base_url}/status/…: HTTP 503")

    output = "\n".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "run finished" in output and "DEBUG" in output
    leaked = [
        value
        for value in (AUTHORIZATION, PIN, QUERY_TOKEN, secret, key)
        if value in output
    ]
    assert leaked == []


def test_tickwork_up_makes_a_key_once_and_keeps_using_it(
    database_url: str, tmp_path: Path, target: Target
) -> None:
    """The first `tickwork up` writes a private key to its data directory; the
    second reads it, so a secret stored by the first is still sent."""
    upgrade(database_url)
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()

    def up() -> Tickwork:
        system = Tickwork(database_url, logs, data_dir=str(data_dir))
        system.env.pop("TICKWORK_SECRET_KEY", None)
        system.start("up")
        system.wait_ready(timeout=60)
        return system

    first = up()
    try:
        job = first.graphql(
            CREATE, input=spec(target.url("/ok"), secretHeaders={"X-Pin": PIN})
        )["createJob"]
        assert job["__typename"] == "Job", job
    finally:
        assert first.stop() == [0]
    key_file = data_dir / "secret-key"
    key = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    second = up()
    try:
        second.graphql(TRIGGER, id=job["id"])
        [request] = target.wait_for(1, timeout=30)
    finally:
        assert second.stop() == [0]
    assert key_file.read_text() == key
    assert request.headers["x-pin"] == PIN
    assert Webhook(job["signingSecret"]).verify(request.body, request.headers)
    # The key never shows up in what the processes printed.
    output = "\n".join(path.read_text() for path in logs.glob("*.log"))
    assert key.strip() not in output
