"""Signed webhooks, checked by a receiver with its own implementation.

Jobs are made over the API, a real daemon delivers them to a real local
target, and the target's requests are verified with the ``standardwebhooks``
package from PyPI (and, once, with plain hmac as the README shows), never with
Tickwork's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, create_job, graphql
from cryptography.fernet import Fernet
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.daemons import database_name, one_pass, settings_for
from tests.support.jobs import shift_clock
from tests.support.target import Received, Target

SIGNING = "signed previousSigningSecretUntil signingSecret"
JOB_SIGNING = f"""
  __typename
  ... on Job {{ id {SIGNING} }}
  ... on InvalidInput {{ message errors {{ field message }} }}
  ... on NotFound {{ message }}
"""
ROTATE = f"""
mutation ($id: ID!, $secret: String) {{
  rotateSigningSecret(id: $id, secret: $secret) {{ {JOB_SIGNING} }}
}}
"""
DROP = f"""
mutation ($id: ID!) {{ dropPreviousSigningSecret(id: $id) {{ {JOB_SIGNING} }} }}
"""
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"
JOB = f"query ($id: ID!) {{ job(id: $id) {{ {SIGNING} }} }}"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A TICKWORK_SECRET_KEY that the API (reading the environment) uses."""
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("TICKWORK_SECRET_KEY", value)
    return value


def webhook_job(url: str, **extra: Any) -> dict[str, Any]:
    """A job whose first fire time is far away: its runs come from triggerJob,
    so each test decides how many deliveries happen."""
    return {
        "name": "signed hook",
        "schedule": {"intervalSeconds": 3600, "startAt": "2099-01-01T00:00:00Z"},
        "action": {"webhook": {"url": url}},
        "payload": {"report": "daily"},
        "maxRetries": 0,
        **extra,
    }


def create(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """createJob, asking for the signing fields; fails the test unless a Job."""
    query = (
        f"mutation ($i: CreateJobInput!) {{ createJob(input: $i) {{ {JOB_SIGNING} }} }}"
    )
    result = graphql(client, query, {"i": spec})["createJob"]
    assert result["__typename"] == "Job", result
    return result


def trigger(client: Any, job_id: str) -> None:
    result = graphql(client, TRIGGER, {"id": job_id})["triggerJob"]
    assert result["__typename"] == "Execution"


def verify(secret: str, request: Received) -> Any:
    """What a receiver using the standardwebhooks package does."""
    return Webhook(secret).verify(request.body, request.headers)


async def test_a_receiver_verifies_the_signature_with_standardwebhooks(
    database_url: str, key: str, target: Target
) -> None:
    """createJob shows a whsec_ secret once; the delivery it signs verifies."""
    with api_client(database_url) as client:
        result = create(client, webhook_job(target.url("/ok")))
        secret = result["signingSecret"]
        read_back = graphql(client, JOB, {"id": result["id"]})["job"]
        trigger(client, result["id"])

    # Shown in the response that made it, and nowhere after.
    assert read_back["signingSecret"] is None and read_back["signed"] is True
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32

    await one_pass(settings_for(database_url, secret_key=key))

    [request] = target.wait_for(1)
    body = verify(secret, request)
    assert body["job_id"] == result["id"]
    assert body["payload"] == {"report": "daily"}
    # The message id is the execution's, like the idempotency key.
    assert request.headers["webhook-id"] == request.headers["idempotency-key"]
    assert request.headers["webhook-id"] == body["execution_id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    # Another job's secret does not verify it.
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + base64.b64encode(b"x" * 32).decode(), request)


async def test_a_receiver_verifies_the_signature_with_plain_hmac(
    database_url: str, key: str, target: Target
) -> None:
    """HMAC-SHA256 of "id.timestamp.body", computed here from scratch."""
    with api_client(database_url) as client:
        job = create(client, webhook_job(target.url("/ok")))
        trigger(client, job["id"])
    await one_pass(settings_for(database_url, secret_key=key))

    [request] = target.wait_for(1)
    secret = base64.b64decode(job["signingSecret"].removeprefix("whsec_"))
    headers = request.headers
    signed = (
        f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode()
        + request.body
    )
    expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest())
    versions = [value.split(",", 1) for value in headers["webhook-signature"].split()]
    assert ["v1", expected.decode()] in versions


async def test_the_readme_receivers_accept_a_delivery_and_refuse_a_forgery(
    database_url: str, key: str, target: Target
) -> None:
    """The two Python examples of the README's "Signed webhooks", run as
    written against a real delivery, and against the same body altered."""
    with api_client(database_url) as client:
        job = create(client, webhook_job(target.url("/ok")))
        trigger(client, job["id"])
    await one_pass(settings_for(database_url, secret_key=key))
    [request] = target.wait_for(1)

    library, plain = readme_examples()
    namespace: dict[str, Any] = {"TICKWORK_SIGNING_SECRET": job["signingSecret"]}
    exec(library, namespace)  # the README's own examples, run as written
    exec(plain, namespace)
    forged = request.body.replace(b'"daily"', b'"never"')

    assert namespace["receive"](request.body, request.headers)["job_id"] == job["id"]
    assert namespace["verified"](job["signingSecret"], request.body, request.headers)
    assert not namespace["verified"](job["signingSecret"], forged, request.headers)
    with pytest.raises(WebhookVerificationError):
        namespace["receive"](forged, request.headers)


def readme_examples() -> list[str]:
    """The Python code blocks of the README's "Signed webhooks" section."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Signed webhooks", 1)[1].split("\n### ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]
    assert len(blocks) == 2, "the section shows two Python receivers"
    return blocks


async def test_during_a_rotation_both_secrets_verify_until_the_old_is_dropped(
    database_url: str, key: str, target: Target
) -> None:
    """After rotateSigningSecret a receiver with either secret verifies; after
    dropPreviousSigningSecret only the new one does."""
    with api_client(database_url) as client:
        job = create(client, webhook_job(target.url("/ok")))
        old = job["signingSecret"]
        rotated = graphql(client, ROTATE, {"id": job["id"]})["rotateSigningSecret"]
        new = rotated["signingSecret"]
        trigger(client, job["id"])
        read_back = graphql(client, JOB, {"id": job["id"]})["job"]

    assert new.startswith("whsec_") and new != old
    assert rotated["previousSigningSecretUntil"] is not None
    assert read_back["signingSecret"] is None

    settings = settings_for(database_url, secret_key=key)
    await one_pass(settings)
    [during] = target.wait_for(1)
    assert verify(old, during)["job_id"] == job["id"]
    assert verify(new, during)["job_id"] == job["id"]
    # The new secret's signature comes first.
    first = during.headers["webhook-signature"].split()[0]
    assert (
        Webhook(new).sign(
            during.headers["webhook-id"],
            _at(during.headers["webhook-timestamp"]),
            during.body.decode(),
        )
        == first
    )

    with api_client(database_url) as client:
        dropped = graphql(client, DROP, {"id": job["id"]})["dropPreviousSigningSecret"]
        trigger(client, job["id"])
    assert dropped["previousSigningSecretUntil"] is None
    assert dropped["signingSecret"] is None
    await one_pass(settings)

    after = target.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verify(new, after)["job_id"] == job["id"]
    with pytest.raises(WebhookVerificationError):
        verify(old, after)


async def test_the_previous_secret_stops_signing_after_its_grace_period(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """Seven days after a rotation, only the new secret signs."""
    with api_client(database_url) as client:
        job = create(client, webhook_job(target.url("/ok")))
        old = job["signingSecret"]
        new = graphql(client, ROTATE, {"id": job["id"]})["rotateSigningSecret"][
            "signingSecret"
        ]
        trigger(client, job["id"])

    await shift_clock(db, database_name(database_url), "7 days 1 minute")
    await one_pass(settings_for(database_url, secret_key=key))
    with api_client(database_url) as client:
        read_back = graphql(client, JOB, {"id": job["id"]})["job"]

    [request] = target.wait_for(1)
    assert verify(new, request)
    with pytest.raises(WebhookVerificationError):
        verify(old, request)
    assert read_back["previousSigningSecretUntil"] is None


async def test_a_given_secret_signs_and_applying_a_key_again_keeps_it(
    database_url: str, key: str, target: Target
) -> None:
    """A whsec_ secret of one's own is used as given and never echoed; createJob
    again with the same key (a deploy script) keeps the job's secret."""
    own = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with api_client(database_url) as client:
        first = create(
            client, webhook_job(target.url("/ok"), key="deploy/hook", signingSecret=own)
        )
        again = create(client, webhook_job(target.url("/ok"), key="deploy/hook"))
        trigger(client, first["id"])

    assert first["signingSecret"] is None  # it was given, not made
    assert again["id"] == first["id"] and again["signingSecret"] is None
    await one_pass(settings_for(database_url, secret_key=key))
    [request] = target.wait_for(1)
    assert verify(own, request)


def test_a_malformed_signing_secret_is_refused_without_repeating_it(
    database_url: str, key: str
) -> None:
    """A secret that is not whsec_ base64 of 24 to 64 bytes is an input error."""
    short = "whsec_" + base64.b64encode(b"tooshort-secret").decode()
    with api_client(database_url) as client:
        for secret, words in [
            ("hunter2-not-whsec", "must start with whsec_"),
            ("whsec_%%%not-base64", "must be base64"),
            (short, "24 to 64 bytes"),
        ]:
            result = create_job(
                client, **webhook_job("https://hooks.example/x", signingSecret=secret)
            )
            assert result["__typename"] == "InvalidInput"
            [error] = result["errors"]
            assert error["field"] == "signingSecret"
            assert words in error["message"]
            assert secret not in str(result)


async def test_a_fetch_is_not_signed(
    database_url: str, key: str, target: Target
) -> None:
    """A GET carries no signature, and rotating a fetch job's secret is refused."""
    with api_client(database_url) as client:
        job = create(
            client,
            {**webhook_job(""), "action": {"fetch": {"url": target.url("/json")}}},
        )
        refused = graphql(client, ROTATE, {"id": job["id"]})["rotateSigningSecret"]
        trigger(client, job["id"])
    assert job["signed"] is False and job["signingSecret"] is None
    assert refused["__typename"] == "InvalidInput"
    assert "only webhook jobs are signed" in refused["message"]

    await one_pass(settings_for(database_url, secret_key=key))
    [request] = target.wait_for(1)
    assert request.method == "GET"
    assert "webhook-signature" not in request.headers


def _at(timestamp: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(timestamp), UTC)
