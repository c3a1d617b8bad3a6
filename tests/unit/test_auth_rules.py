"""The small rules authentication rests on: loopback hosts, origins, tokens."""

from __future__ import annotations

import hashlib

import pytest

from api.auth import AuthRefused, bearer_token, normalize_origin
from shared.auth import TokenError, check_name, hash_token, is_loopback_host, new_token


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost"]
)
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "127"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    """Binding all interfaces (0.0.0.0, ::) is the case that matters most."""
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("HTTP://Example.COM:80", "http://example.com"),
        ("https://tickwork.example:443/", "https://tickwork.example"),
        ("http://127.0.0.1:8000/graphql?x=1", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("http://host:99999", None),
    ],
)
def test_origins_are_compared_as_browsers_send_them(
    value: str, origin: str | None
) -> None:
    assert normalize_origin(value) == origin


def test_tokens_are_long_random_and_hashed_with_sha256() -> None:
    tokens = {new_token() for _ in range(100)}

    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith("tw_") and len(token) == 43
        assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "  Bearer   abc  "])
def test_a_bearer_header_gives_its_token(header: str) -> None:
    assert bearer_token(header) == "abc"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "abc"])
def test_other_authorization_headers_are_refused(header: str) -> None:
    with pytest.raises(AuthRefused, match="expected 'Bearer <token>'"):
        bearer_token(header)


@pytest.mark.parametrize("name", ["", "-ci", "has space", "x" * 65, "naïve", "a/b"])
def test_token_names_are_short_plain_words(name: str) -> None:
    with pytest.raises(TokenError, match="token name"):
        check_name(name)
