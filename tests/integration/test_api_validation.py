"""Bad input is answered with InvalidInput naming each field, and stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import api_client, count_rows, create_job, interval_job
from fastapi.testclient import TestClient

WEBHOOK = {"webhook": {"url": "https://hooks.example/x"}}

BAD_INPUTS = [
    pytest.param(
        {
            "name": "tz",
            "schedule": {
                "cron": {"expression": "0 9 * * *", "timezone": "Mars/Olympus"}
            },
            "action": WEBHOOK,
        },
        "schedule.cron.timezone",
        id="unknown time zone",
    ),
    pytest.param(
        {
            "name": "cron",
            "schedule": {"cron": {"expression": "61 * * * *"}},
            "action": WEBHOOK,
        },
        "schedule.cron.expression",
        id="bad cron expression",
    ),
    pytest.param(
        {"name": "zero", "schedule": {"intervalSeconds": 0}, "action": WEBHOOK},
        "schedule.intervalSeconds",
        id="interval of zero",
    ),
    pytest.param(
        {
            "name": "url",
            "schedule": {"intervalSeconds": 5},
            "action": {"webhook": {"url": "http://exa mple.com:99999/"}},
        },
        "action.webhook.url",
        id="malformed webhook URL",
    ),
    pytest.param(
        {
            "name": "ftp",
            "schedule": {"intervalSeconds": 5},
            "action": {"fetch": {"url": "ftp://files.example/x"}},
        },
        "action.fetch.url",
        id="fetch URL that is not http",
    ),
    pytest.param(
        {"name": "", "schedule": {"intervalSeconds": 5}, "action": WEBHOOK},
        "name",
        id="empty name",
    ),
    pytest.param(
        {"name": "x" * 201, "schedule": {"intervalSeconds": 5}, "action": WEBHOOK},
        "name",
        id="name too long",
    ),
    pytest.param(
        {
            "name": "retries",
            "schedule": {"intervalSeconds": 5},
            "action": WEBHOOK,
            "maxRetries": 101,
        },
        "maxRetries",
        id="too many retries",
    ),
    pytest.param(
        {
            "name": "timeout",
            "schedule": {"intervalSeconds": 5},
            "action": WEBHOOK,
            "timeoutSeconds": 0,
        },
        "timeoutSeconds",
        id="zero timeout",
    ),
    pytest.param(
        {
            "name": "timeout",
            "schedule": {"intervalSeconds": 5},
            "action": WEBHOOK,
            "timeoutSeconds": 3601,
        },
        "timeoutSeconds",
        id="timeout over an hour",
    ),
    pytest.param(
        {"name": "no schedule", "action": WEBHOOK},
        "schedule",
        id="schedule missing",
    ),
    pytest.param(
        {
            "name": "two kinds",
            "schedule": {"intervalSeconds": 5, "at": "2030-01-01T00:00:00Z"},
            "action": WEBHOOK,
        },
        "schedule",
        id="two schedule kinds",
    ),
    pytest.param(
        {"name": "naive", "schedule": {"at": "2030-01-01T00:00:00"}, "action": WEBHOOK},
        "schedule.at",
        id="instant without offset",
    ),
    pytest.param(
        {"name": "no action", "schedule": {"intervalSeconds": 5}},
        "action",
        id="action missing",
    ),
    pytest.param(
        {
            "name": "legacy",
            "schedule": {"intervalSeconds": 5},
            "payload": {"webhook_url": "not a url"},
        },
        "payload.webhook_url",
        id="bad payload webhook_url",
    ),
    pytest.param(
        {
            "name": "huge payload",
            "schedule": {"intervalSeconds": 5},
            "action": WEBHOOK,
            "payload": {"blob": "x" * 70_000},
        },
        "payload",
        id="payload over 64 KiB",
    ),
    pytest.param(
        {"name": "nul\x00name", "schedule": {"intervalSeconds": 5}, "action": WEBHOOK},
        "name",
        id="NUL in the name",
    ),
    pytest.param(
        {
            "name": "nul payload",
            "schedule": {"intervalSeconds": 5},
            "action": WEBHOOK,
            "payload": {"note": ["fine", "not\x00fine"]},
        },
        "payload.note[1]",
        id="NUL deep in the payload",
    ),
    pytest.param(
        {
            "name": "nul header",
            "schedule": {"intervalSeconds": 5},
            "action": {
                "webhook": {"url": "https://h.example/x", "headers": {"X-A": "a\x00"}}
            },
        },
        "action.webhook.headers.X-A",
        id="NUL in a header value",
    ),
    pytest.param(
        {
            "name": "framing header",
            "schedule": {"intervalSeconds": 5},
            "action": {
                "webhook": {
                    "url": "https://h.example/x",
                    "headers": {"Content-Length": "5"},
                }
            },
        },
        "action.webhook.headers.Content-Length",
        id="a header that frames the request",
    ),
]


@pytest.mark.parametrize(("spec", "field"), BAD_INPUTS)
def test_bad_input_names_the_field_and_stores_nothing(
    database_url: str, spec: dict[str, Any], field: str
) -> None:
    """Each kind of bad input names its field, and no job row is written."""
    with api_client(database_url) as client:
        result = create_job(client, **spec)

    assert result["__typename"] == "InvalidInput", result
    assert field in [error["field"] for error in result["errors"]], result
    assert result["message"]
    assert count_rows(database_url, "jobs") == 0


def test_every_bad_field_is_reported_at_once(database_url: str) -> None:
    """A name, a retry count and a time zone that are all wrong come back together."""
    spec = interval_job("", maxRetries=-1)
    spec["schedule"] = {"cron": {"expression": "0 0 * * *", "timezone": "Nowhere"}}
    with api_client(database_url) as client:
        result = create_job(client, **spec)

    fields = {error["field"] for error in result["errors"]}
    assert fields == {"name", "maxRetries", "schedule.cron.timezone"}
    assert result["message"].startswith("3 input fields are invalid")


def test_a_bad_key_upsert_leaves_the_stored_job_alone(database_url: str) -> None:
    """A createJob with an existing key but bad input keeps the stored job."""
    with api_client(database_url) as client:
        first = create_job(client, **interval_job("kept", key="k"))
        bad = create_job(client, **interval_job("new", key="k", timeoutSeconds=-5))
        again = create_job(client, **interval_job("kept", key="k"))

    assert bad["__typename"] == "InvalidInput"
    assert again["id"] == first["id"]
    assert count_rows(database_url, "jobs") == 1


def test_a_payload_that_is_not_valid_unicode_is_refused(database_url: str) -> None:
    """A lone surrogate (valid JSON escape, invalid text) names the payload field."""
    query = (
        "mutation($input: CreateJobInput!) { createJob(input: $input) {"
        " __typename ... on InvalidInput { errors { field message } } } }"
    )
    # Sent as raw JSON text: the client library would refuse to encode it.
    variables = {
        "input": {
            "name": "surrogate",
            "schedule": {"intervalSeconds": 5},
            "action": {"webhook": {"url": "https://hooks.example/x"}},
            "payload": {"x": "LONE_SURROGATE"},
        }
    }
    body = json.dumps({"query": query, "variables": variables})
    body = body.replace('"LONE_SURROGATE"', '"\\ud800"')
    with api_client(database_url) as client:
        result = client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        ).json()["data"]["createJob"]

    assert result["__typename"] == "InvalidInput"
    assert [e["field"] for e in result["errors"]] == ["payload.x"]
    assert count_rows(database_url, "jobs") == 0


def _post_with_lone_surrogate(
    client: TestClient, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """Post ``variables`` with every "LONE_SURROGATE" string sent as "\\ud800",
    as raw JSON text: the client library would refuse to encode it."""
    body = json.dumps({"query": query, "variables": variables})
    body = body.replace('"LONE_SURROGATE"', '"\\ud800"')
    response = client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_name_that_is_not_valid_unicode_is_invalid_input(database_url: str) -> None:
    """In production, a lone surrogate as a job's name is InvalidInput naming
    the name, not an unexpected error from the database driver."""
    query = (
        "mutation($input: CreateJobInput!) { createJob(input: $input) {"
        " __typename ... on InvalidInput { errors { field message } } } }"
    )
    spec = interval_job("LONE_SURROGATE")
    with api_client(database_url, env="production") as client:
        body = _post_with_lone_surrogate(client, query, {"input": spec})

    result = body["data"]["createJob"]
    assert result["__typename"] == "InvalidInput", body
    assert result["errors"] == [
        {
            "field": "name",
            "message": "must be valid Unicode text (it holds a lone surrogate)",
        }
    ]
    assert count_rows(database_url, "jobs") == 0


def test_a_name_filter_that_is_not_valid_unicode_is_bad_user_input(
    database_url: str,
) -> None:
    """In production, jobs(name:) with a lone surrogate is an error coded
    BAD_USER_INPUT that names the argument."""
    query = "query($n: String) { jobs(name: $n) { edges { node { id } } } }"
    with api_client(database_url, env="production") as client:
        body = _post_with_lone_surrogate(client, query, {"n": "LONE_SURROGATE"})

    (error,) = body["errors"]
    assert error["message"].startswith("name: must be valid Unicode text"), error
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "name"}
