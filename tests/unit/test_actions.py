"""Validating what a run does, and keeping credentials out of messages."""

from __future__ import annotations

import pytest

from shared.actions import build_action
from shared.errors import InvalidInputError
from shared.http import redact_url


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


def test_headers_that_frame_the_request_are_refused() -> None:
    """Host, Content-Length and the like would corrupt or redirect the request."""
    with pytest.raises(InvalidInputError) as exc:
        build_action(
            webhook={
                "url": "ftp://x",
                "headers": {"Content-Length": "5", "Host": "evil.example", "X-Ok": "1"},
            },
            fetch=None,
        )
    fields = {e.field for e in exc.value.errors}
    # Every mistake is named at once: the URL and both reserved headers.
    assert fields == {
        "action.webhook.url",
        "action.webhook.headers.Content-Length",
        "action.webhook.headers.Host",
    }


def test_an_overlong_url_is_refused_at_create_time() -> None:
    """A 100,000-character URL is an input error, not a crash at run time."""
    with pytest.raises(InvalidInputError) as exc:
        build_action(webhook={"url": "http://h.example/" + "a" * 100_000}, fetch=None)
    assert "the limit is 2048" in exc.value.errors[0].message
