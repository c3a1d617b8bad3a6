"""The bounds on a job's URL and headers: each refusal names the field and limit."""

from __future__ import annotations

import pytest

from shared.actions import build_action
from shared.errors import FieldError, InvalidInputError


def _refusals(**webhook: object) -> list[FieldError]:
    with pytest.raises(InvalidInputError) as exc:
        build_action(webhook={"url": "https://h.example/", **webhook}, fetch=None)
    return exc.value.errors


def test_a_url_of_2048_characters_is_kept_and_one_more_is_refused() -> None:
    """The limit is inclusive, and the message says how long the URL was."""
    base = "https://h.example/"
    longest = base + "a" * (2048 - len(base))

    assert build_action(webhook={"url": longest}, fetch=None).url == longest
    [error] = _refusals(url=longest + "a")
    assert error == FieldError(
        "action.webhook.url", "is 2049 characters long; the limit is 2048"
    )


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://h.example/", "javascript:alert(1)", "//h/x"],
)
def test_only_http_and_https_urls_are_accepted(url: str) -> None:
    """Other schemes would make the daemon read files or speak other protocols."""
    [error] = _refusals(url=url)
    assert error == FieldError(
        "action.webhook.url", "must be an http:// or https:// URL"
    )


def test_fifty_headers_are_accepted_and_fifty_one_are_refused() -> None:
    """The count is checked before each header, so the one error says it all."""
    fifty = {f"X-H{n}": "v" for n in range(50)}

    action = build_action(
        webhook={"url": "https://h.example/", "headers": fifty}, fetch=None
    )
    assert len(action.headers) == 50
    assert _refusals(headers={**fifty, "X-One-More": "v"}) == [
        FieldError("action.webhook.headers", "has 51 headers; the limit is 50")
    ]


def test_an_overlong_header_name_is_refused_without_echoing_it() -> None:
    """A 10,000-character name is named by its length, not repeated."""
    [error] = _refusals(headers={"X-" + "a" * 9998: "v"})

    assert error == FieldError(
        "action.webhook.headers",
        "a header name is 10000 characters long; the limit is 256",
    )


def test_an_overlong_header_value_is_refused() -> None:
    """Values up to 8192 characters pass; longer ones are named by length."""
    fits = build_action(
        webhook={"url": "https://h.example/", "headers": {"X-Big": "v" * 8192}},
        fetch=None,
    )

    assert fits.headers == {"X-Big": "v" * 8192}
    assert _refusals(headers={"X-Big": "v" * 8193}) == [
        FieldError(
            "action.webhook.headers.X-Big", "is 8193 characters long; the limit is 8192"
        )
    ]


@pytest.mark.parametrize("name", ["X Team", "X-Tëam", "X(Team)", "X-Team:", ""])
def test_header_names_must_be_http_tokens(name: str) -> None:
    """Spaces, separators and non-ASCII letters cannot be sent as a name."""
    [error] = _refusals(headers={name: "v"})

    assert error.field == f"action.webhook.headers.{name}"
    assert error.message.startswith("not a valid header name")


@pytest.mark.parametrize("value", ["caf\u00e9", "\u65e5\u672c", "a\x7fb", "a\tb"])
def test_header_values_must_be_printable_ascii(value: str) -> None:
    """A value no HTTP client would send is refused now, not at every run."""
    assert _refusals(headers={"X-Team": value}) == [
        FieldError(
            "action.webhook.headers.X-Team", "must be printable ASCII characters"
        )
    ]


@pytest.mark.parametrize(
    "name",
    ["Host", "content-length", "Transfer-Encoding", "Connection", "Keep-Alive",
     "Upgrade", "TE", "Trailer", "Proxy-Authorization", "Idempotency-Key"],
)  # fmt: skip
def test_headers_that_frame_route_or_identify_the_request_are_refused(
    name: str,
) -> None:
    """Hop-by-hop headers and those Tickwork sets itself cannot be given."""
    assert _refusals(headers={name: "x"}) == [
        FieldError(
            f"action.webhook.headers.{name}", "is set by Tickwork and cannot be given"
        )
    ]
