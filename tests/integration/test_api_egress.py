"""What the API says about targets: an address no run may reach is refused when
the job is created (the daemon checks again at every connection, since names can
change), and a job's CA bundle is checked and shown."""

from __future__ import annotations

import pytest
import trustme
from api_helpers import api_client, count_rows, graphql, interval_job

CREATE = """
mutation ($input: CreateJobInput!) { createJob(input: $input) {
  __typename
  ... on Job { id action { webhook { url verifyTls caBundle } } }
  ... on InvalidInput { errors { field message } }
} }
"""


def create(database_url: str, action: dict) -> dict:
    with api_client(database_url) as client:
        return graphql(client, CREATE, {"input": interval_job(action=action)})[
            "createJob"
        ]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254 inside it"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://0.0.0.0:8080/", "unspecified"),
    ],
)
def test_an_address_no_run_may_reach_is_refused_at_create_time(
    database_url: str, url: str, words: str
) -> None:
    result = create(database_url, {"webhook": {"url": url}})

    assert result["__typename"] == "InvalidInput", result
    [error] = result["errors"]
    assert error["field"] == "action.webhook.url"
    assert "never allowed" in error["message"] and words in error["message"]
    assert count_rows(database_url, "jobs") == 0


# 169.254.169.254 as resolvers also read it: one number, hexadecimal, octal,
# three parts, and with the trailing dot of a fully qualified name.
LEGACY_METADATA = [
    "http://2852039166/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://0xA9.0xFE.0xA9.0xFE:80/",
    "http://169.254.169.254./",
]


@pytest.mark.parametrize("url", LEGACY_METADATA)
def test_an_address_no_run_may_reach_is_refused_in_its_legacy_spellings(
    database_url: str, url: str
) -> None:
    result = create(database_url, {"webhook": {"url": url}})

    assert result["__typename"] == "InvalidInput", result
    [error] = result["errors"]
    assert error["field"] == "action.webhook.url"
    message = error["message"]
    assert "169.254.169.254" in message and "never allowed" in message
    assert count_rows(database_url, "jobs") == 0


@pytest.mark.parametrize("url", ["http://169.254.169.254/", *LEGACY_METADATA[:2]])
def test_an_alert_url_no_run_may_reach_is_refused_at_create_time(
    database_url: str, url: str
) -> None:
    with api_client(database_url) as client:
        spec = interval_job(policies={"alertUrl": url})
        result = graphql(client, CREATE, {"input": spec})["createJob"]

    assert result["__typename"] == "InvalidInput", result
    [error] = result["errors"]
    assert error["field"] == "policies.alertUrl"
    assert "never allowed" in error["message"]
    assert count_rows(database_url, "jobs") == 0


def test_names_and_public_addresses_are_not_taken_for_legacy_spellings(
    database_url: str,
) -> None:
    """Hosts made of hex letters are names, and a short form of a public
    address is left to the daemon's settings like any other."""
    for url in ["http://cafe.example/", "http://deadbeef/", "http://8.8.2056/"]:
        result = create(database_url, {"webhook": {"url": url}})
        assert result["__typename"] == "Job", (url, result)


def test_a_private_address_is_accepted_at_create_time(database_url: str) -> None:
    """Whether a private address may be reached is the daemon's setting."""
    result = create(database_url, {"webhook": {"url": "http://10.0.0.5/hook"}})

    assert result["__typename"] == "Job", result


def test_a_ca_bundle_that_is_not_pem_certificates_is_refused(
    database_url: str,
) -> None:
    result = create(
        database_url,
        {"webhook": {"url": "https://hooks.example/x", "caBundle": "not a cert"}},
    )

    assert result["__typename"] == "InvalidInput", result
    assert [e["field"] for e in result["errors"]] == ["action.webhook.caBundle"]
    assert count_rows(database_url, "jobs") == 0


def test_a_jobs_ca_bundle_is_stored_and_shown_with_verification_on(
    database_url: str,
) -> None:
    pem = trustme.CA().cert_pem.bytes().decode()
    result = create(
        database_url, {"webhook": {"url": "https://hooks.example/x", "caBundle": pem}}
    )

    assert result["__typename"] == "Job", result
    hook = result["action"]["webhook"]
    assert hook["verifyTls"] is True
    assert hook["caBundle"].strip() == pem.strip()
