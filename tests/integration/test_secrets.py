"""Secrets are write-only: sent to the target, stored encrypted, shown nowhere.

Jobs carry every kind of secret (an Authorization header, a cookie, a header
marked secret, credentials and a token in the URL, the signing secret); a real
daemon delivers them to a real local target, and then every place a secret
could surface is searched: API responses for a read and a write token, the
logs of the API and the daemon, stored errors and alerts, and the jobs table.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from api_helpers import api_client, graphql
from cryptography.fernet import Fernet

from shared.schedule import Schedule
from tests.support.daemons import one_pass, settings_for, webhook
from tests.support.jobs import executions_of, insert_job
from tests.support.target import Target

AUTHORIZATION = "Bearer auth-secret-7f3a"
COOKIE = "session=cookie-secret-55aa"
PIN = "pin-secret-91c2"
URL_PASSWORD = "url-pass-4d2e"
QUERY_TOKEN = "query-token-0b9d"
# What must never come out; the query token may, to write-scoped callers only.
NEVER_SHOWN = ["auth-secret-7f3a", "cookie-secret-55aa", PIN, URL_PASSWORD]

CREATE = """
mutation ($i: CreateJobInput!) {
  createJob(input: $i) {
    __typename
    ... on Job { id signingSecret }
    ... on InvalidInput { message errors { field message } }
  }
}
"""
UPDATE = """
mutation ($id: ID!, $i: UpdateJobInput!) {
  updateJob(id: $id, input: $i) {
    __typename
    ... on Job { id action { webhook { url headers secretHeaderNames } } }
    ... on InvalidInput { message errors { field message } }
  }
}
"""
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }"
EVERYTHING = """
query ($id: ID!) {
  jobs(first: 50) { edges { node {
    id name payload signed signingSecret previousSigningSecretUntil
    action {
      webhook { url headers secretHeaderNames verifyTls followRedirects }
      fetch { url }
    }
    policies { alertUrl }
    lastExecution { error }
    executions(first: 20) { edges { node {
      id error result attempts { error responseExcerpt }
    } } }
  } } }
  job(id: $id) {
    action { webhook { url headers secretHeaderNames } }
    policies { alertUrl }
  }
  auditEvents(first: 100) { edges { node { action jobId detail } } }
}
"""


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A TICKWORK_SECRET_KEY that the API (reading the environment) uses."""
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("TICKWORK_SECRET_KEY", value)
    return value


def hook(url: str, name: str = "secret hook", **webhook_fields: Any) -> dict:
    """A webhook job that runs only when triggered, failing at its first error."""
    return {
        "name": name,
        "schedule": {"intervalSeconds": 3600, "startAt": "2099-01-01T00:00:00Z"},
        "action": {"webhook": {"url": url, **webhook_fields}},
        "maxRetries": 0,
    }


def create(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    return graphql(client, CREATE, {"i": spec})["createJob"]


def log_text(records: list[logging.LogRecord]) -> str:
    """Every log line as a handler would write it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


async def test_secrets_reach_the_target_and_appear_nowhere_else(
    database_url: str,
    db: psycopg.AsyncConnection,
    key: str,
    target: Target,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sent as given; absent from responses (read and write), logs, errors,
    alerts and the jobs table, which holds ciphertext only."""
    caplog.set_level(logging.DEBUG)
    # As every Tickwork process has it (shared/logs.py): httpx would log each
    # request's whole URL at INFO.
    caplog.set_level(logging.WARNING, logger="httpx")
    failing = target.url(f"/status/500/hook?token={QUERY_TOKEN}")
    with_user = target.url("/status/404/deep/path").replace(
        "://", f"://hook-user:{URL_PASSWORD}@"
    )
    with api_client(database_url) as client:
        headers_job = create(
            client,
            {
                **hook(
                    failing,
                    headers={
                        "Authorization": AUTHORIZATION,
                        "Cookie": COOKIE,
                        "X-Team": "ops",
                    },
                    secretHeaders={"X-Tenant-Pin": PIN},
                ),
                "policies": {"alertUrl": target.url("/alerts")},
            },
        )
        url_job = create(client, hook(with_user, name="user info"))
        assert headers_job["__typename"] == url_job["__typename"] == "Job"
        signing = [headers_job["signingSecret"], url_job["signingSecret"]]
        for job in (headers_job, url_job):
            assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    await one_pass(settings_for(database_url, secret_key=key))

    # The target got every secret, as given.
    requests = {r.path.split("/")[2]: r for r in target.wait_for(2)}
    sent = requests["500"].headers
    assert sent["authorization"] == AUTHORIZATION
    assert sent["cookie"] == COOKIE
    assert sent["x-tenant-pin"] == PIN
    assert sent["x-team"] == "ops"
    assert QUERY_TOKEN in requests["500"].path
    basic = base64.b64encode(f"hook-user:{URL_PASSWORD}".encode()).decode()
    assert requests["404"].headers["authorization"] == f"Basic {basic}"

    # Responses, for a write token and for a read token.
    never = [*NEVER_SHOWN, *signing]
    with api_client(database_url) as writer:
        as_writer = graphql(writer, EVERYTHING, {"id": headers_job["id"]})
    with api_client(database_url, scope="read") as reader:
        as_reader = graphql(reader, EVERYTHING, {"id": headers_job["id"]})
    for response in (as_writer, as_reader):
        text = json.dumps(response)
        assert not [secret for secret in never if secret in text]
    assert QUERY_TOKEN not in json.dumps(as_reader)

    webhook_of = as_writer["job"]["action"]["webhook"]
    assert webhook_of["url"] == failing  # write-scoped callers see it whole
    assert webhook_of["headers"] == {"X-Team": "ops"}
    assert webhook_of["secretHeaderNames"] == [
        "Authorization",
        "Cookie",
        "X-Tenant-Pin",
    ]
    read_hook = as_reader["job"]["action"]["webhook"]
    assert read_hook["url"] == target.base_url + "/status/…"
    assert read_hook["secretHeaderNames"] == webhook_of["secretHeaderNames"]
    assert as_reader["job"]["policies"]["alertUrl"] == target.base_url + "/alerts"
    nodes = [edge["node"] for edge in as_writer["jobs"]["edges"]]
    by_name = {node["name"]: node for node in nodes}
    user_info = by_name["user info"]["action"]["webhook"]
    assert user_info["url"] == target.url("/status/404/deep/path")
    assert user_info["secretHeaderNames"] == ["Authorization"]
    assert all(node["signed"] and node["signingSecret"] is None for node in nodes)
    assert as_writer["auditEvents"]["edges"], "the mutations were audited"

    # Stored errors and alerts name the target without its secrets.
    stored = await _stored_text(db)
    assert "HTTP 500" in stored and "HTTP 404" in stored
    assert not [s for s in [*never, QUERY_TOKEN] if s in stored], stored

    # The jobs table holds ciphertext that only the key opens.
    rows = await (
        await db.execute(
            "SELECT action::text, secret_headers, signing_secrets FROM jobs"
        )
    ).fetchall()
    fernet = Fernet(key.encode())
    opened = ""
    for action, secret_headers, signing_secrets in rows:
        for secret in [*never, "hook-user"]:
            assert secret not in action
            assert secret.encode() not in bytes(secret_headers)
            assert secret.encode() not in bytes(signing_secrets)
        opened += fernet.decrypt(bytes(secret_headers)).decode()
        opened += fernet.decrypt(bytes(signing_secrets)).decode()
    assert all(secret in opened for secret in [AUTHORIZATION, PIN, *signing])

    # Not one log line of the API or the daemon shows a secret or the token.
    logs = log_text(caplog.records)
    assert "run finished" in logs
    assert not [s for s in [*never, QUERY_TOKEN, basic] if s in logs]


async def _stored_text(db: psycopg.AsyncConnection) -> str:
    """Every error and alert the database holds, as one text."""
    queries = [
        "SELECT coalesce(string_agg(error, ' | '), '') FROM executions",
        "SELECT coalesce(string_agg(error, ' | '), '') FROM attempts",
        "SELECT coalesce(string_agg(payload::text || coalesce(last_error, ''),"
        " ' | '), '') FROM alerts",
    ]
    parts = []
    for query in queries:
        parts.append((await (await db.execute(query)).fetchone())[0])
    return "\n".join(parts)


def test_without_a_key_secrets_are_refused_and_nothing_is_stored(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In development without TICKWORK_SECRET_KEY, a secret header is an input
    error naming the setting; a webhook without secrets is made, unsigned."""
    monkeypatch.delenv("TICKWORK_SECRET_KEY", raising=False)
    with api_client(database_url) as client:
        refused = create(
            client,
            hook("https://hooks.example/x", headers={"X-Api-Key": "k-secret-1"}),
        )
        given = create(
            client,
            {
                **hook("https://hooks.example/x"),
                "signingSecret": "whsec_" + base64.b64encode(b"s" * 32).decode(),
            },
        )
        count = graphql(client, "{ jobs { edges { node { id } } } }")["jobs"]
        plain = create(client, hook("https://hooks.example/x", name="plain"))
        signed = graphql(
            client, "query ($id: ID!) { job(id: $id) { signed } }", {"id": plain["id"]}
        )["job"]["signed"]

    assert refused["__typename"] == "InvalidInput"
    assert refused["errors"] == [
        {
            "field": "action.webhook.secretHeaders",
            "message": "cannot be stored: TICKWORK_SECRET_KEY is not set on the API",
        }
    ]
    assert "k-secret-1" not in json.dumps(refused)
    assert given["__typename"] == "InvalidInput"
    assert given["errors"][0]["field"] == "signingSecret"
    assert "TICKWORK_SECRET_KEY" in given["errors"][0]["message"]
    assert count["edges"] == []
    assert plain["__typename"] == "Job" and plain["signingSecret"] is None
    assert signed is False


async def test_a_daemon_without_the_right_key_says_so_and_sends_nothing(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """A key that does not open the secrets fails the attempt with a clear
    error; with the old key listed after a new one, the run goes out."""
    with api_client(database_url) as client:
        job = create(client, hook(target.url("/ok"), headers={"X-Auth-Token": "t0k"}))
        assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    other = Fernet.generate_key().decode()
    await one_pass(settings_for(database_url, secret_key=other))
    [execution] = await executions_of(db, job["id"])
    assert execution["status"] == "FAILED"
    assert execution["error"].startswith(f"POST {target.base_url}/ok: stored secrets")
    assert "cannot be decrypted with TICKWORK_SECRET_KEY" in execution["error"]
    assert target.requests == []

    # Rotating the key: a new one first, the old one still listed.
    with api_client(database_url) as client:
        assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
    await one_pass(settings_for(database_url, secret_key=f"{other},{key}"))
    [request] = target.wait_for(1)
    assert request.headers["x-auth-token"] == "t0k"


def test_a_malformed_key_is_named_without_being_shown() -> None:
    """A TICKWORK_SECRET_KEY that is not a Fernet key stops the settings."""
    with pytest.raises(ValueError) as exc:
        settings_for("postgresql://x/y", secret_key="not-a-key-but-a-secret")
    assert "TICKWORK_SECRET_KEY: key 1 of 1 is not a Fernet key" in str(exc.value)
    assert "not-a-key-but-a-secret" not in str(exc.value)


@pytest.mark.parametrize("module", ["api", "daemon"])
def test_production_without_a_key_refuses_to_start(
    database_url: str, module: str
) -> None:
    """`tickwork api` and `tickwork daemon` exit 2 and say what to set."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TICKWORK_")
    }
    env |= {"TICKWORK_DATABASE_URL": database_url, "TICKWORK_ENV": "production"}
    done = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert (
        f"tickwork {module}: TICKWORK_SECRET_KEY must be set in production"
        in done.stderr
    )
    assert "Fernet.generate_key()" in done.stderr


async def test_an_update_keeps_secret_headers_only_on_the_same_host(
    database_url: str, key: str, target: Target
) -> None:
    """Leaving secretHeaders out keeps them while the URL stays on its host;
    moving the job elsewhere needs them given again, and changes nothing."""
    with api_client(database_url) as client:
        job = create(
            client,
            hook(target.url("/ok"), secretHeaders={"X-Pin": PIN, "X-Other": "o"}),
        )
        moved_path = graphql(
            client,
            UPDATE,
            {
                "id": job["id"],
                "i": {
                    "action": {
                        "webhook": {
                            "url": target.url("/ok/v2"),
                            "secretHeaders": {"X-Pin": None},
                        }
                    }
                },
            },
        )["updateJob"]
        elsewhere = graphql(
            client,
            UPDATE,
            {
                "id": job["id"],
                "i": {"action": {"webhook": {"url": "https://evil.example/collect"}}},
            },
        )["updateJob"]
        assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    assert moved_path["action"]["webhook"]["secretHeaderNames"] == ["X-Pin"]
    assert elsewhere["__typename"] == "InvalidInput"
    assert {e["field"] for e in elsewhere["errors"]} == {
        "action.webhook.secretHeaders.X-Pin"
    }
    assert "moved to another host" in elsewhere["message"]

    await one_pass(settings_for(database_url, secret_key=key))
    [request] = target.wait_for(1)
    assert request.path == "/ok/v2"
    assert request.headers["x-pin"] == PIN
    assert "x-other" not in request.headers


async def test_plain_credential_headers_from_before_are_hidden_then_sealed(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """A job stored with Authorization in plain text (before secrets existed)
    shows only its name, still sends it, and is sealed at its next change."""
    job_id = await insert_job(
        db,
        schedule=Schedule(kind="interval", interval_seconds=3600),
        action=webhook(target.url("/ok"), headers={"Authorization": AUTHORIZATION}),
    )
    query = "query ($id: ID!) { job(id: $id) { action { webhook { headers "
    query += "secretHeaderNames } } } }"
    with api_client(database_url) as client:
        before = graphql(client, query, {"id": str(job_id)})["job"]
        renamed = graphql(
            client, UPDATE, {"id": str(job_id), "i": {"name": "renamed"}}
        )["updateJob"]
        assert graphql(client, TRIGGER, {"id": str(job_id)})["triggerJob"]
    assert AUTHORIZATION not in json.dumps(before)
    assert before["action"]["webhook"]["secretHeaderNames"] == ["Authorization"]
    assert renamed["__typename"] == "Job"

    cur = await db.execute(
        "SELECT action, secret_headers FROM jobs WHERE id = %s", (job_id,)
    )
    action, sealed = await cur.fetchone()
    assert action["headers"] == {} and action["secret_headers"] == ["Authorization"]
    assert AUTHORIZATION.encode() not in bytes(sealed)

    await one_pass(settings_for(database_url, secret_key=key))
    [request] = target.wait_for(1)
    assert request.headers["authorization"] == AUTHORIZATION


def test_refused_secret_headers_are_named_never_shown(
    database_url: str, key: str
) -> None:
    """A secret header with a bad value, or given twice, is named by its field;
    the message never holds the value."""
    with api_client(database_url) as client:
        bad = create(
            client,
            hook("https://hooks.example/x", secretHeaders={"X-Bad": ["bad-secret"]}),
        )
        twice = create(
            client,
            hook(
                "https://hooks.example/x",
                headers={"Authorization": "Bearer dup-secret"},
                secretHeaders={"authorization": "Bearer dup-secret"},
            ),
        )
    assert bad["errors"] == [
        {
            "field": "action.webhook.secretHeaders.X-Bad",
            "message": "must be a one-line string",
        }
    ]
    assert twice["errors"] == [
        {
            "field": "action.webhook.headers.Authorization",
            "message": "is also in action.webhook.secretHeaders",
        }
    ]
    assert "secret" not in json.dumps([bad, twice]).replace("secretHeaders", "")


def test_graphql_input_errors_do_not_quote_secrets(
    database_url: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo next to secretHeaders, or a signing secret of the wrong type, is
    refused by GraphQL itself; neither the answer nor the log quotes the value."""
    caplog.set_level(logging.DEBUG)
    typo = hook("https://hooks.example/x", secretHeaders={"X-Pin": PIN})
    typo["action"]["webhook"]["verifyTLS"] = True
    wrong_type = {**hook("https://hooks.example/x"), "signingSecret": [PIN]}
    with api_client(database_url) as client:
        answers = [
            client.post("/graphql", json={"query": CREATE, "variables": {"i": spec}})
            for spec in (typo, wrong_type)
        ]
    messages = [answer.json()["errors"][0]["message"] for answer in answers]

    assert messages == [
        "Variable '$i' has invalid value at .action.webhook: Expected value of "
        "type 'WebhookInput' not to include unknown field 'verifyTLS'. Did you "
        "mean 'verifyTls'?",
        "Variable '$i' has invalid value at .signingSecret: String cannot "
        "represent a non string value.",
    ]
    assert PIN not in log_text(caplog.records)


async def test_resealing_lets_the_old_key_go(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """After a new key is put first and `python -m shared.secrets reseal` ran,
    the new key alone opens every job; a key that opens nothing changes nothing."""
    with api_client(database_url) as client:
        job = create(client, hook(target.url("/ok"), secretHeaders={"X-Pin": PIN}))
        assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]
    new = Fernet.generate_key().decode()

    def reseal(keys: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TICKWORK_DATABASE_URL": database_url}
        env["TICKWORK_SECRET_KEY"] = keys
        return subprocess.run(
            [sys.executable, "-m", "shared.secrets", "reseal"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    cur = await db.execute("SELECT secret_headers FROM jobs")
    before = bytes((await cur.fetchone())[0])
    refused = reseal(Fernet.generate_key().decode())
    assert refused.returncode == 1
    assert "cannot be decrypted" in refused.stderr
    assert "nothing was changed" in refused.stderr
    cur = await db.execute("SELECT secret_headers FROM jobs")
    assert bytes((await cur.fetchone())[0]) == before

    done = reseal(f"{new},{key}")
    assert done.returncode == 0, done.stderr
    assert "resealed the secrets of 1 jobs" in done.stdout

    await one_pass(settings_for(database_url, secret_key=new))
    [request] = target.wait_for(1)
    assert request.headers["x-pin"] == PIN


async def test_a_target_echoing_its_request_does_not_publish_the_secrets(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """The stored answer of a target that echoes its headers (a webhook's
    excerpt, a fetch's result) holds "…" where the secret values were."""
    fetch_url = target.url("/echo/fetch").replace("://", "://me:fetch-pass-12@")
    with api_client(database_url) as client:
        hook_job = create(
            client, hook(target.url("/echo/hook"), secretHeaders={"X-Pin": PIN})
        )
        fetch_job = create(
            client, {**hook(""), "action": {"fetch": {"url": fetch_url}}}
        )
        for job in (hook_job, fetch_job):
            assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    await one_pass(settings_for(database_url, secret_key=key))

    assert {r.path for r in target.wait_for(2)} == {"/echo/hook", "/echo/fetch"}
    [hooked] = await executions_of(db, hook_job["id"])
    [fetched] = await executions_of(db, fetch_job["id"])
    cur = await db.execute(
        "SELECT response_excerpt FROM attempts WHERE execution_id = %s",
        (hooked["id"],),
    )
    [excerpt] = await cur.fetchone()
    basic = base64.b64encode(b"me:fetch-pass-12").decode()
    assert hooked["status"] == fetched["status"] == "SUCCEEDED"
    echoed = {k.lower(): v for k, v in json.loads(excerpt)["headers"].items()}
    assert echoed["x-pin"] == "…"
    assert PIN not in excerpt
    echoed = {k.lower(): v for k, v in fetched["result"]["headers"].items()}
    assert echoed["authorization"] == "…"
    assert basic not in json.dumps(fetched["result"])


async def test_a_secret_echoed_inside_a_json_string_is_cut_out_escaped_too(
    database_url: str, db: psycopg.AsyncConnection, key: str, target: Target
) -> None:
    """A secret holding a quote and a backslash appears in an echo as JSON
    spells it, each with a backslash in front; that spelling is cut out of
    the stored excerpt too, so a read token cannot see it."""
    quoted = 'ab"cd\\ef/QUOTEDSECRET'
    with api_client(database_url) as client:
        job = create(
            client, hook(target.url("/echo/quoted"), secretHeaders={"X-Pin": quoted})
        )
        assert graphql(client, TRIGGER, {"id": job["id"]})["triggerJob"]

    await one_pass(settings_for(database_url, secret_key=key))

    [request] = target.wait_for(1)
    assert request.headers["x-pin"] == quoted
    [execution] = await executions_of(db, job["id"])
    cur = await db.execute(
        "SELECT response_excerpt FROM attempts WHERE execution_id = %s",
        (execution["id"],),
    )
    [excerpt] = await cur.fetchone()
    assert execution["status"] == "SUCCEEDED"
    assert json.dumps(quoted)[1:-1] not in excerpt
    echoed = {k.lower(): v for k, v in json.loads(excerpt)["headers"].items()}
    assert echoed["x-pin"] == "…"
    with api_client(database_url, scope="read") as reader:
        shown = json.dumps(graphql(reader, EVERYTHING, {"id": job["id"]}))
    assert "QUOTEDSECRET" not in shown
