"""A job's own client certificate: its key is taken once, stored encrypted, never
shown, and presented by the daemon to a server that requires a certificate."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import trustme
from api_helpers import api_client, graphql
from cryptography.fernet import Fernet

from tests.support.daemons import one_pass, settings_for
from tests.support.hostile import Hostile, server_context
from tests.support.jobs import executions_of

JOB = """
  __typename
  ... on Job { id action { webhook { url caBundle clientCertificate } } }
  ... on InvalidInput { errors { field message } }
"""
CREATE = f"mutation ($i: CreateJobInput!) {{ createJob(input: $i) {{ {JOB} }} }}"
UPDATE = (
    "mutation ($id: ID!, $i: UpdateJobInput!) "
    f"{{ updateJob(id: $id, input: $i) {{ {JOB} }} }}"
)
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A TICKWORK_SECRET_KEY that the API (reading the environment) uses."""
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("TICKWORK_SECRET_KEY", value)
    return value


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[Hostile]:
    """An HTTPS server that accepts only clients with a certificate of ``ca``."""
    tls = server_context(ca, "valid")
    tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(tls)
    with Hostile(tls=tls) as hostile:
        yield hostile


def identity(ca: trustme.CA, name: str) -> tuple[str, str]:
    """A client certificate of ``ca`` for ``name``, and its key, as PEM."""
    cert = ca.issue_cert(f"{name.replace(' ', '-')}.test", common_name=name)
    return cert.cert_chain_pems[
        0
    ].bytes().decode(), cert.private_key_pem.bytes().decode()


def hook(url: str, ca: trustme.CA, **fields: Any) -> dict[str, Any]:
    """A webhook job that runs only when triggered."""
    return {
        "name": "mutual TLS",
        "schedule": {"intervalSeconds": 3600, "startAt": "2099-01-01T00:00:00Z"},
        "action": {
            "webhook": {"url": url, "caBundle": ca.cert_pem.bytes().decode(), **fields}
        },
        "maxRetries": 0,
    }


async def test_a_jobs_client_certificate_is_presented_and_its_key_kept_secret(
    database_url: str,
    db: psycopg.AsyncConnection,
    key: str,
    ca: trustme.CA,
    server: Hostile,
) -> None:
    certificate, private_key = identity(ca, "billing job")
    with api_client(database_url) as client:
        job = graphql(
            client,
            CREATE,
            {
                "i": hook(
                    server.url("/ok"),
                    ca,
                    clientCertificate=certificate,
                    clientKey=private_key,
                )
            },
        )["createJob"]
        assert job["__typename"] == "Job", job
        graphql(client, TRIGGER, {"id": job["id"]})

    await one_pass(settings_for(database_url, secret_key=key))

    [execution] = await executions_of(db, job["id"])
    assert execution["status"] == "SUCCEEDED", execution["error"]
    [subject] = server.client_certificates
    assert (("commonName", "billing job"),) in subject
    assert job["action"]["webhook"]["clientCertificate"].strip() == certificate.strip()
    row = await (
        await db.execute(
            "SELECT action, client_key FROM jobs WHERE id = %s", [job["id"]]
        )
    ).fetchone()
    action, sealed = row
    assert "client_key" not in action
    assert b"PRIVATE KEY" not in bytes(sealed)
    assert Fernet(key.encode()).decrypt(bytes(sealed)).decode().count("PRIVATE KEY")


async def test_an_update_keeps_the_key_only_for_the_same_certificate_and_host(
    database_url: str,
    db: psycopg.AsyncConnection,
    key: str,
    ca: trustme.CA,
    server: Hostile,
) -> None:
    certificate, private_key = identity(ca, "kept job")
    other_certificate, _ = identity(ca, "other job")
    with api_client(database_url) as client:
        job = graphql(
            client,
            CREATE,
            {
                "i": hook(
                    server.url("/ok"),
                    ca,
                    clientCertificate=certificate,
                    clientKey=private_key,
                )
            },
        )["createJob"]
        same = hook(server.url("/ok?again"), ca, clientCertificate=certificate)
        kept = graphql(client, UPDATE, {"id": job["id"], "i": same})["updateJob"]
        elsewhere = hook(
            "https://elsewhere.example/ok", ca, clientCertificate=certificate
        )
        moved = graphql(client, UPDATE, {"id": job["id"], "i": elsewhere})["updateJob"]
        swapped = hook(server.url("/ok"), ca, clientCertificate=other_certificate)
        changed = graphql(client, UPDATE, {"id": job["id"], "i": swapped})["updateJob"]
        graphql(client, TRIGGER, {"id": job["id"]})

    assert kept["__typename"] == "Job", kept
    for refused in (moved, changed):
        assert refused["__typename"] == "InvalidInput", refused
        [error] = refused["errors"]
        assert error["field"] == "action.webhook.clientKey"
    await one_pass(settings_for(database_url, secret_key=key))
    [execution] = await executions_of(db, job["id"])
    assert execution["status"] == "SUCCEEDED", execution["error"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"clientCertificate": "mine"}, "clientCertificate", "not a PEM certificate"),
        ({"clientCertificate": "CERT"}, "clientKey", "give the private key"),
        ({"clientKey": "KEY"}, "clientKey", "give clientCertificate"),
        (
            {"clientCertificate": "CERT", "clientKey": "not a key"},
            "clientKey",
            "not an unencrypted PEM private key",
        ),
        (
            {"clientCertificate": "CERT", "clientKey": "OTHER KEY"},
            "clientKey",
            "not the key of clientCertificate",
        ),
    ],
)
def test_a_client_certificate_without_its_key_is_refused_naming_the_field(
    database_url: str,
    key: str,
    ca: trustme.CA,
    fields: dict[str, str],
    field: str,
    words: str,
) -> None:
    certificate, private_key = identity(ca, "checked job")
    _, other_key = identity(ca, "another job")
    pems = {"CERT": certificate, "KEY": private_key, "OTHER KEY": other_key}
    given = {name: pems.get(value, value) for name, value in fields.items()}
    with api_client(database_url) as client:
        result = graphql(
            client, CREATE, {"i": hook("https://hooks.example/x", ca, **given)}
        )["createJob"]

    assert result["__typename"] == "InvalidInput", result
    [error] = result["errors"]
    assert error["field"] == f"action.webhook.{field}"
    assert words in error["message"]
    assert private_key not in str(result) and other_key not in str(result)


async def test_resealing_under_a_new_key_keeps_the_client_key_readable(
    database_url: str,
    db: psycopg.AsyncConnection,
    key: str,
    ca: trustme.CA,
    server: Hostile,
) -> None:
    """After `python -m shared.secrets reseal` with a new key first, the daemon
    with the new key alone still presents the job's certificate."""
    certificate, private_key = identity(ca, "rotated job")
    with api_client(database_url) as client:
        job = graphql(
            client,
            CREATE,
            {
                "i": hook(
                    server.url("/ok"),
                    ca,
                    clientCertificate=certificate,
                    clientKey=private_key,
                )
            },
        )["createJob"]
        graphql(client, TRIGGER, {"id": job["id"]})
    new = Fernet.generate_key().decode()

    resealing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.secrets",
        "reseal",
        env={
            **os.environ,
            "TICKWORK_DATABASE_URL": database_url,
            "TICKWORK_SECRET_KEY": f"{new},{key}",
        },
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(resealing.communicate(), 60)
    assert resealing.returncode == 0, stderr.decode()
    await one_pass(settings_for(database_url, secret_key=new))

    [execution] = await executions_of(db, job["id"])
    assert execution["status"] == "SUCCEEDED", execution["error"]
    [subject] = server.client_certificates
    assert (("commonName", "rotated job"),) in subject
