"""What a run does: POST a webhook, or fetch a URL and keep its JSON."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import FieldError, InvalidInputError

ActionKind = Literal["webhook", "fetch"]

# The original REST design put the target in the payload under one of these keys.
LEGACY_URL_KEYS = ("webhook_url", "callback_url")

MAX_URL_LENGTH = 2048

# Headers that frame or route the request, or that Tickwork sets itself: a job
# setting them would corrupt the request or impersonate another host.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "content-type",
        "idempotency-key",
    }
)


class Action(BaseModel):
    """A validated action, as stored in ``jobs.action``.

    A fetch without a URL fetches a quote from the configured quote source.
    """

    model_config = ConfigDict(frozen=True)

    kind: ActionKind
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    follow_redirects: bool = False


def build_action(
    *,
    webhook: dict[str, Any] | None,
    fetch: dict[str, Any] | None,
    payload: Any = None,
    field: str = "action",
) -> Action:
    """Validate user input into an :class:`Action`, or raise InvalidInputError.

    With neither ``webhook`` nor ``fetch``, a payload holding ``webhook_url`` or
    ``callback_url`` makes a webhook to that URL.
    """
    if webhook is None and fetch is None and isinstance(payload, dict):
        for key in LEGACY_URL_KEYS:
            if isinstance(payload.get(key), str):
                webhook = {"url": payload[key]}
                field = f"payload.{key}"
                break
        else:
            raise InvalidInputError.single(field, "give webhook or fetch")
    if (webhook is None) == (fetch is None):
        raise InvalidInputError.single(field, "give exactly one of webhook or fetch")

    if webhook is not None:
        url_field = field if field.startswith("payload.") else f"{field}.webhook.url"
        errors: list[FieldError] = []
        url = _collect(errors, validate_url, webhook.get("url"), url_field)
        headers = _collect(
            errors, _headers, webhook.get("headers"), f"{field}.webhook.headers"
        )
        if errors:
            raise InvalidInputError(errors)
        return Action(
            kind="webhook",
            url=url,
            headers=headers,
            verify_tls=webhook.get("verify_tls", True) is not False,
            follow_redirects=bool(webhook.get("follow_redirects", False)),
        )

    raw_url = (fetch or {}).get("url")
    url = None
    if raw_url is not None and raw_url.strip():
        url = validate_url(raw_url, f"{field}.fetch.url")
    return Action(kind="fetch", url=url)


def validate_url(value: Any, field: str) -> str:
    """A trimmed absolute http(s) URL, or InvalidInputError naming ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.single(field, "a URL is required")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInputError.single(
            field, f"is {len(url)} characters long; the limit is {MAX_URL_LENGTH}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidInputError.single(field, f"malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError.single(field, "must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidInputError.single(field, "must name a host")
    if any(ch.isspace() for ch in url):
        raise InvalidInputError.single(field, "must not contain spaces")
    return url


def _collect(errors: list[FieldError], check: Any, value: Any, field: str) -> Any:
    """Run one check, adding its errors to ``errors`` instead of stopping."""
    try:
        return check(value, field)
    except InvalidInputError as exc:
        errors.extend(exc.errors)
        return None


def _headers(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError.single(field, "must be an object of header: value")
    errors = []
    for name, header_value in value.items():
        if not name or any(ch in name for ch in " \t\r\n:\x00"):
            errors.append(FieldError(f"{field}.{name}", "not a valid header name"))
        elif name.lower() in RESERVED_HEADERS:
            errors.append(
                FieldError(f"{field}.{name}", "is set by Tickwork and cannot be given")
            )
        elif not isinstance(header_value, str) or any(
            ch in header_value for ch in "\r\n\x00"
        ):
            errors.append(FieldError(f"{field}.{name}", "must be a one-line string"))
    if errors:
        raise InvalidInputError(errors)
    return dict(value)
