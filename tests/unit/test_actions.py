"""Validating what a run does, and keeping credentials out of messages."""

from __future__ import annotations

import random

import pytest

from shared.actions import build_action
from shared.errors import InvalidInputError
from shared.http import redact_url
from shared.retry import retry_delay


def test_a_webhook_url_is_trimmed() -> None:
    """Stray whitespace around a pasted URL is not an error."""
    action = build_action(webhook={"url": "  https://example.com/hook \n"}, fetch=None)
    assert action.url == "https://example.com/hook"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "required"),
        ("ftp://example.com/x", "http:// or https://"),
        ("https://", "must name a host"),
        ("http://example.com:99999/", "malformed"),
        ("not a url", "http:// or https://"),
    ],
)
def test_bad_webhook_urls_name_the_field(url: str, words: str) -> None:
    """Each bad URL is refused with the field path and the reason."""
    with pytest.raises(InvalidInputError) as exc:
        build_action(webhook={"url": url}, fetch=None)
    [error] = exc.value.errors
    assert error.field == "action.webhook.url"
    assert words in error.message


def test_a_payload_webhook_url_becomes_the_webhook() -> None:
    """The original REST convention: payload.webhook_url with no action."""
    action = build_action(
        webhook=None, fetch=None, payload={"callback_url": "http://h.example/cb"}
    )
    assert (action.kind, action.url) == ("webhook", "http://h.example/cb")


def test_a_fetch_may_leave_out_its_url() -> None:
    """A fetch without a URL fetches a quote."""
    action = build_action(webhook=None, fetch={})
    assert (action.kind, action.url) == ("fetch", None)


def test_redacted_urls_keep_the_host_and_drop_secrets() -> None:
    """User info and query tokens never reach a log line or an error."""
    redacted = redact_url(
        "https://user:pw@hooks.example.com/services/T000/B000/XXXX?token=s"
    )
    assert redacted.startswith("https://hooks.example.com/services/")
    assert "pw" not in redacted and "token" not in redacted and "XXXX" not in redacted


def test_retry_delays_grow_exponentially_up_to_the_cap_with_jitter() -> None:
    """Delays double per failure, never exceed the cap, and never go below half."""
    rng = random.Random(7)
    for failures, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        delays = [retry_delay(failures, base=2, cap=60, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not fixed
