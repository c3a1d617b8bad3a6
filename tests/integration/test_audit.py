"""The audit trail: each change through the API names the token that made it."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from shared.auth import create_token, revoke_token
from shared.models import TokenScope
from tests.integration.api_helpers import (
    api_client,
    bearer,
    create_job,
    graphql,
    interval_job,
    stored_token,
)

EVENTS = """
query ($first: Int, $after: String, $jobId: ID) {
  auditEvents(first: $first, after: $after, jobId: $jobId) {
    edges { node { action actor actorKind tokenId jobId detail createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
BY_ID = {
    "updateJob": """mutation ($id: ID!, $input: UpdateJobInput!) {
        updateJob(id: $id, input: $input) { __typename }
    }""",
    "pauseJob": "mutation ($id: ID!) { pauseJob(id: $id) { __typename } }",
    "resumeJob": "mutation ($id: ID!) { resumeJob(id: $id) { __typename } }",
    "deleteJob": "mutation ($id: ID!) { deleteJob(id: $id) { __typename } }",
}
TRIGGER = "mutation ($id: ID!) { triggerJob(id: $id) { ... on Execution { id } } }"
CANCEL = "mutation ($id: ID!) { cancelExecution(id: $id) { __typename } }"
RETRY = "mutation ($id: ID!) { retryExecution(id: $id) { __typename } }"


def events(client: TestClient, **variables: Any) -> list[dict[str, Any]]:
    data = graphql(client, EVENTS, variables)["auditEvents"]
    return [edge["node"] for edge in data["edges"]]


def run(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    return graphql(client, query, variables)


def test_every_kind_of_change_is_recorded_with_the_token_that_made_it(
    database_url: str,
) -> None:
    token = stored_token(database_url, TokenScope.WRITE, "deployer")
    with api_client(database_url, scope=None) as client:
        client.headers.update(bearer(token))
        job = create_job(client, **interval_job("audited", key="jobs/audited"))
        job_id = job["id"]
        update = {"maxRetries": 1, "name": "renamed"}
        run(client, BY_ID["updateJob"], id=job_id, input=update)
        for action in ("pauseJob", "resumeJob"):
            run(client, BY_ID[action], id=job_id)
        execution = run(client, TRIGGER, id=job_id)["triggerJob"]["id"]
        run(client, CANCEL, id=execution)
        run(client, RETRY, id=execution)
        run(client, BY_ID["deleteJob"], id=job_id)
        made_token, *trail = reversed(events(client))

    assert (made_token["action"], made_token["actor"]) == ("createToken", "cli")
    assert [event["action"] for event in trail] == [
        "createJob",
        "updateJob",
        "pauseJob",
        "resumeJob",
        "triggerJob",
        "cancelExecution",
        "retryExecution",
        "deleteJob",
    ]
    token_id = _token_id(database_url, "deployer")
    for event in trail:
        assert event["actor"] == "deployer"
        assert event["actorKind"] == "token"
        assert event["tokenId"] == token_id
        assert event["jobId"] == job_id
    assert trail[0]["detail"] == {"name": "audited", "key": "jobs/audited"}
    # Names of the fields given, never their values (they may be secrets).
    assert trail[1]["detail"] == {"fields": ["maxRetries", "name"]}
    assert trail[5]["detail"] == {"execution_id": execution}
    assert trail[6]["detail"] == {"execution_id": execution}
    times = [event["createdAt"] for event in trail]
    assert times == sorted(times)


def test_changes_that_did_not_happen_are_not_recorded(database_url: str) -> None:
    """Unknown ids and refused input change nothing, so the trail stays empty."""
    unknown = "00000000-0000-0000-0000-000000000000"
    with api_client(database_url) as client:
        job = create_job(client, **interval_job())
        bad = run(
            client,
            """mutation ($id: ID!) { updateJob(id: $id, input: {maxRetries: -1})
               { __typename } }""",
            id=job["id"],
        )
        missing = run(client, BY_ID["pauseJob"], id=unknown)
        trail = events(client)

    assert bad["updateJob"]["__typename"] == "InvalidInput"
    assert missing["pauseJob"]["__typename"] == "NotFound"
    assert [event["action"] for event in trail] == ["createJob"]


def test_the_bootstrap_token_is_recorded_as_bootstrap(database_url: str) -> None:
    with api_client(database_url) as client:
        run(client, "mutation { createTestJob { __typename } }")
        [event] = events(client)

    assert (event["action"], event["actor"], event["actorKind"]) == (
        "createTestJob",
        "bootstrap",
        "bootstrap",
    )
    assert event["tokenId"] is None


def test_the_trail_pages_newest_first_and_filters_by_job(database_url: str) -> None:
    with api_client(database_url) as client:
        first = create_job(client, **interval_job("first"))["id"]
        second = create_job(client, **interval_job("second"))["id"]
        for _ in range(2):
            run(client, BY_ID["pauseJob"], id=first)

        page = graphql(client, EVENTS, {"first": 2})["auditEvents"]
        rest = graphql(
            client, EVENTS, {"first": 2, "after": page["pageInfo"]["endCursor"]}
        )["auditEvents"]
        of_second = events(client, jobId=second)
        of_nothing = events(client, jobId="not-an-id")

    newest = [edge["node"] for edge in page["edges"]]
    older = [edge["node"] for edge in rest["edges"]]
    assert page["pageInfo"]["hasNextPage"] is True
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [e["action"] for e in newest] == ["pauseJob", "pauseJob"]
    assert [(e["action"], e["jobId"]) for e in older] == [
        ("createJob", second),
        ("createJob", first),
    ]
    assert [(e["action"], e["jobId"]) for e in of_second] == [("createJob", second)]
    assert of_nothing == []


def test_token_creation_and_revocation_are_recorded_as_cli(database_url: str) -> None:
    info, _ = create_token(database_url, "ci", TokenScope.READ)
    revoke_token(database_url, "ci")

    with api_client(database_url) as client:
        trail = list(reversed(events(client)))

    assert [(e["action"], e["actor"]) for e in trail] == [
        ("createToken", "cli"),
        ("revokeToken", "cli"),
    ]
    for event in trail:
        assert event["tokenId"] == str(info.id)
        assert event["detail"]["name"] == "ci"
        assert event["detail"]["scope"] == "read"


def _token_id(database_url: str, name: str) -> str:
    with psycopg.connect(database_url) as connection:
        sql = "SELECT id FROM api_tokens WHERE name = %s"
        return str(connection.execute(sql, (name,)).fetchone()[0])
