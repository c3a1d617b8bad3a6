"""Signing, secret keys, credential headers and URL redaction, without I/O."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from daemon.delivery import _scrubbed, _spellings
from shared.actions import is_sensitive_header
from shared.http import redact_url, scrub_url
from shared.secrets import SecretBox, SecretKeyError, key_from_file, parse_keys
from shared.signing import (
    InvalidSecretError,
    check_secret,
    new_secret,
    signature_headers,
    signing_key,
)


def test_signatures_match_the_reference_implementation() -> None:
    """Each signature equals what the standardwebhooks package computes, one
    per key, in the order given."""
    current, previous = new_secret(), new_secret()
    body = b'{"job_id":"j","payload":{"a":"\xc3\xa9"}}'
    headers = signature_headers(
        [signing_key(current), signing_key(previous)], "msg_1", 1_700_000_000, body
    )
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    expected = [
        Webhook(secret).sign("msg_1", at, body.decode())
        for secret in (current, previous)
    ]
    assert headers["webhook-signature"].split(" ") == expected
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1700000000"


def test_without_a_key_a_message_carries_its_id_but_no_signature() -> None:
    headers = signature_headers([], "msg_2", 1, b"{}")
    assert headers == {"webhook-id": "msg_2", "webhook-timestamp": "1"}


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert check_secret(secret) == secret
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ("plain-text", "must start with whsec_"),
        ("whsec_not base64!", "must be base64 after whsec_"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "it holds 23"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
    ],
)
def test_malformed_secrets_are_refused_without_repeating_them(
    secret: str, words: str
) -> None:
    with pytest.raises(InvalidSecretError) as exc:
        check_secret(secret)
    assert words in str(exc.value)
    assert secret.removeprefix("whsec_") not in str(exc.value)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "cookie",
        "X-Api-Key",
        "apikey",
        "X-Auth-Token",
        "X-Hub-Signature",
        "X_Client_Secret",
        "X-Session-Id",
        "Private-Token",
    ],
)
def test_credential_header_names_are_secret(name: str) -> None:
    assert is_sensitive_header(name)


@pytest.mark.parametrize("name", ["X-Team", "Accept", "X-Monkey", "User-Agent"])
def test_ordinary_header_names_are_not(name: str) -> None:
    assert not is_sensitive_header(name)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw@hooks.slack.com/services/T000/B000/XXXX?token=s#f",
            "https://hooks.slack.com/services/…",
        ),
        ("http://127.0.0.1:8080/ok", "http://127.0.0.1:8080/ok"),
        ("http://h.example/hook?key=k", "http://h.example/hook…"),
        ("https://webhook.example/0f1e2d3c-aaaa-bbbb", "https://webhook.example/…"),
        ("http://[::1]:81/a/b", "http://[::1]:81/a/…"),
        ("http://h.example", "http://h.example"),
        ("http://h.example:port/", "<malformed URL>"),
    ],
)
def test_redacted_urls_show_scheme_host_and_first_segment(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_library_error_quoting_the_url_is_scrubbed() -> None:
    url = "https://user:pw-123@h.example/a/secret-path?tok=abc"
    text = scrub_url(
        f"cannot connect to {url} nor https://h.example/a/secret-path", url
    )
    assert text == "cannot connect to https://h.example/a/… nor https://h.example/a/…"


def test_an_echoed_secret_is_cut_out_however_the_echo_spells_it() -> None:
    """As sent, inside a JSON string (with ``/`` escaped or not) and
    percent-encoded, with or without ``/`` left as it is."""
    secret = 'ab"cd\\ef/gh ij'
    echoes = [
        secret,
        json.dumps(secret),
        json.dumps(secret).replace("/", "\\/"),
        quote(secret, safe=""),
        quote(secret),
    ]

    scrubbed = _scrubbed(" | ".join(echoes), _spellings([secret]))

    assert scrubbed == '… | "…" | "…" | … | …'


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_by_old = SecretBox(parse_keys(old)).seal({"a": 1})
    both = SecretBox(parse_keys(f" {new} ,\n{old} "))

    assert both.open(sealed_by_old) == {"a": 1}
    assert SecretBox(parse_keys(new)).open(both.reseal(sealed_by_old)) == {"a": 1}
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox(parse_keys(new)).open(sealed_by_old)


def test_a_malformed_key_is_named_by_position_not_shown() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(SecretKeyError) as exc:
        parse_keys(f"{good},short-secret")
    assert "key 2 of 2 is not a Fernet key" in str(exc.value)
    assert "short-secret" not in str(exc.value) and good not in str(exc.value)


def test_tickwork_up_makes_a_private_key_once_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = key_from_file(data_dir)
    again = key_from_file(data_dir)

    assert first == again
    parse_keys(first)
    mode = stat.S_IMODE((data_dir / "secret-key").stat().st_mode)
    assert mode == 0o600
