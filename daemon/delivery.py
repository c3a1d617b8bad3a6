"""Performing one attempt of a run: a webhook POST or a fetch, bounded in time
and size, turned into an :class:`Outcome` for the database.

Whether a failed attempt is retried depends on what failed. Outages pass, so
they are retried with backoff: timeouts, refused or reset connections, DNS
failures, 408, 425, 429 and every 5xx. Answers that would come back the same on
every attempt fail the execution at once, whatever ``maxRetries`` says, and the
error says why: other 4xx, a redirect not followed or a redirect loop, a TLS
certificate that does not verify, a fetch whose body is not JSON or too large.

A webhook is signed as Standard Webhooks describe (``shared/signing.py``):
``webhook-id`` is the execution id, the same on every attempt, like
``Idempotency-Key``; ``webhook-signature`` holds one signature per secret the
job has, the previous one too during a rotation. A fetch is a GET with no body,
to an API Tickwork reads rather than a receiver that must trust it, so it is
not signed. The job's secret headers are decrypted here, just before sending,
and go nowhere else: not to another origin a redirect leads to, and not into
the answers stored for people to read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin

from daemon.queue import Claim, Outcome
from shared.actions import is_sensitive_header
from shared.http import (
    ClientIdentity,
    DeliveryError,
    HttpClient,
    HttpResponse,
    redact_url,
)
from shared.retry import next_retry_delay, retry_after_seconds
from shared.secrets import (
    KEY_SETTING,
    SecretKeyError,
    open_headers,
    open_signing,
    secret_box,
)
from shared.settings import Settings
from shared.signing import signature_headers, signing_key

logger = logging.getLogger(__name__)

# What an attempt keeps of a response for people to read.
EXCERPT_BYTES = 2 * 1024
# The largest fetch result stored; a larger body fails the attempt.
RESULT_BYTES = 64 * 1024

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Secret values shorter than this are not cut out of stored answers: they
# would match ordinary text.
MIN_SCRUBBED = 4

# Client errors that may pass: a request timeout, a request sent too early, and
# rate limiting. Every 5xx is retried too.
RETRIED_CLIENT_ERRORS = frozenset({408, 425, 429})


class AttemptFailed(Exception):
    """The target answered, but not with success; the message says how.

    ``permanent`` names why a retry cannot help (None when it may), and
    ``retry_after`` is how long the target asked to wait, in seconds.
    """

    def __init__(
        self,
        message: str,
        response: HttpResponse | None = None,
        *,
        permanent: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.permanent = permanent
        self.retry_after = retry_after


async def perform(claim: Claim, client: HttpClient, settings: Settings) -> Outcome:
    """Run one attempt of ``claim`` and describe how it ended. Never raises for a
    failure of the target: that is an outcome like any other."""
    started = time.monotonic()
    response: HttpResponse | None = None
    result: Any = None
    error: str | None = None
    permanent: str | None = None
    retry_after: float | None = None
    secret_headers: dict[str, str] = {}
    webhook = claim.action["kind"] == "webhook"
    try:
        url = claim.action.get("url") or settings.resolved_quote_url()
        secret_headers, keys = _open_secrets(
            claim, settings, "POST" if webhook else "GET", url
        )
        if webhook:
            response = await _webhook(claim, client, settings, secret_headers, keys)
        else:
            response, result = await _fetch(claim, client, settings, secret_headers)
    except DeliveryError as exc:
        error, permanent = str(exc), exc.permanent
    except AttemptFailed as exc:
        error, response = str(exc), exc.response
        permanent, retry_after = exc.permanent, exc.retry_after
    ended = outcome(
        claim,
        settings,
        duration=time.monotonic() - started,
        error=None if error is None else storable(error),
        response=response,
        result=result,
        permanent=permanent,
        retry_after=retry_after,
    )
    return _without_secrets(ended, list(secret_headers.values()))


def outcome(
    claim: Claim,
    settings: Settings,
    *,
    duration: float,
    error: str | None,
    response: HttpResponse | None = None,
    result: Any = None,
    permanent: str | None = None,
    retry_after: float | None = None,
) -> Outcome:
    """How an attempt ended: succeeded, or failed and retrying or final.

    A failure with a ``permanent`` reason is final at once, and the error says
    why it was not retried. Otherwise it is retried while the job has retries
    left, after the job's backoff (or the daemon's), or after ``retry_after``
    seconds when the target asked for that, within the backoff's cap.
    """
    failed = error is not None
    delay = 0.0
    if error is None:
        status = "SUCCEEDED"
    elif permanent is not None:
        status = "FAILED"
        error = f"{error}: not retried ({permanent})"
    elif claim.failures + 1 > claim.max_retries:
        status = "FAILED"
    else:
        status = "RETRYING"
        delay = next_retry_delay(
            claim.failures + 1,
            base=_or(claim.retry_base_seconds, settings.retry_base_seconds),
            cap=_or(claim.retry_max_seconds, settings.retry_max_seconds),
            retry_after=retry_after,
        )
    return Outcome(
        claim=claim,
        failed=failed,
        status=status,
        retry_delay=delay,
        duration=duration,
        http_status=response.status if response else None,
        result=result,
        error=error,
        excerpt=_excerpt(response),
    )


async def _webhook(
    claim: Claim,
    client: HttpClient,
    settings: Settings,
    secret_headers: dict[str, str],
    keys: list[bytes],
) -> HttpResponse:
    action = claim.action
    url = action["url"]
    body = {
        "job_id": str(claim.job_id),
        "job_name": claim.job_name,
        "execution_id": str(claim.execution_id),
        "scheduled_for": _iso(claim.scheduled_for),
        "started_at": _iso(claim.started_at),
        "attempt": claim.attempt,
        "payload": claim.payload,
    }
    content = json.dumps(body, separators=(",", ":")).encode()
    message_id = str(claim.execution_id)
    headers = {
        **action.get("headers", {}),
        **secret_headers,
        "content-type": "application/json",
        IDEMPOTENCY_HEADER: message_id,
        **signature_headers(keys, message_id, int(time.time()), content),
    }
    following = action.get("follow_redirects", False)
    response = await client.request(
        "POST",
        url,
        time_limit=claim.timeout_seconds,
        headers=headers,
        content=content,
        verify_tls=action.get("verify_tls", True),
        ca_bundle=action.get("ca_bundle"),
        identity=_identity(claim, settings, url),
        follow_redirects=following,
        max_body=EXCERPT_BYTES,
        # Only a redirect can take headers elsewhere.
        sensitive_headers=_secret_names(action, secret_headers)
        if following
        else frozenset(),
    )
    _require_success(response, "POST", url, following=following)
    return response


async def _fetch(
    claim: Claim,
    client: HttpClient,
    settings: Settings,
    secret_headers: dict[str, str],
) -> tuple[HttpResponse, Any]:
    url = claim.action.get("url") or settings.resolved_quote_url()
    response = await client.request(
        "GET",
        url,
        # The quote source is the operator's choice, not the job's: exempt.
        checked=bool(claim.action.get("url")),
        time_limit=claim.timeout_seconds,
        headers={
            **secret_headers,
            "accept": "application/json",
            IDEMPOTENCY_HEADER: str(claim.execution_id),
        },
        max_body=RESULT_BYTES,
    )
    _require_success(response, "GET", url)
    if response.truncated:
        raise AttemptFailed(
            f"GET {redact_url(url)}: response larger than {RESULT_BYTES // 1024} KiB",
            response,
            permanent=f"results are limited to {RESULT_BYTES // 1024} KiB",
        )
    try:
        document = json.loads(response.body)
    except (UnicodeDecodeError, ValueError):
        kind = response.headers.get("content-type", "no content type")
        raise AttemptFailed(
            f"GET {redact_url(url)}: response is not JSON ({kind})",
            response,
            permanent="the target does not serve JSON",
        ) from None
    if _holds_nul(document):
        # PostgreSQL's JSON cannot hold a NUL character.
        raise AttemptFailed(
            f"GET {redact_url(url)}: the JSON holds NUL characters, which cannot "
            "be stored",
            response,
            permanent="the same document would come back",
        )
    return response, document


def _open_secrets(
    claim: Claim, settings: Settings, method: str, url: str
) -> tuple[dict[str, str], list[bytes]]:
    """The job's secret headers and its signing keys, current first.

    The previous key signs only until ``signing_previous_until``, compared
    with the claim's start on the database clock. A key that cannot open the
    secrets fails the attempt, to be retried: another daemon may hold the key.
    """
    if claim.secret_headers is None and claim.signing_secrets is None:
        return {}, []
    box = secret_box(settings)
    try:
        headers = open_headers(box, claim.secret_headers)
        secrets = open_signing(box, claim.signing_secrets)
    except SecretKeyError as exc:
        raise AttemptFailed(f"{method} {redact_url(url)}: {exc}") from None
    until = claim.signing_previous_until
    if until is None or until <= claim.started_at:
        secrets = secrets[:1]
    return headers, [signing_key(secret) for secret in secrets]


def _secret_names(action: dict[str, Any], secrets: dict[str, str]) -> frozenset[str]:
    """The names, in lower case, of the headers that carry secrets: the job's
    secret headers, and plain headers whose name says they carry a credential
    (a job stored before such headers were sealed still has them in plain)."""
    plain = (name for name in action.get("headers", {}) if is_sensitive_header(name))
    return frozenset(name.lower() for name in (*secrets, *plain))


def _identity(claim: Claim, settings: Settings, url: str) -> ClientIdentity | None:
    """The job's own client certificate and its decrypted key, if it has them.
    A key that cannot be opened fails the attempt, to be retried, like other
    secrets."""
    certificate = claim.action.get("client_certificate")
    if certificate is None or claim.client_key is None:
        return None
    box = secret_box(settings)
    try:
        if box is None:
            raise SecretKeyError(f"{KEY_SETTING} is not set, so secrets cannot be read")
        key = box.open(claim.client_key)["client_key"]
    except SecretKeyError as exc:
        raise AttemptFailed(f"POST {redact_url(url)}: {exc}") from None
    return ClientIdentity(certificate=certificate, key=key)


def _without_secrets(ended: Outcome, secrets: list[str]) -> Outcome:
    """The outcome with the job's secret header values cut out of what is
    stored for people to read: a target that echoes its request (as test
    services do) must not publish them, not even escaped as a JSON string or
    percent-encoded."""
    secrets = _spellings(secret for secret in secrets if len(secret) >= MIN_SCRUBBED)
    if not secrets:
        return ended
    return replace(
        ended,
        error=_scrubbed(ended.error, secrets),
        excerpt=_scrubbed(ended.excerpt, secrets),
        result=_scrubbed(ended.result, secrets),
    )


def _spellings(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in an answer: as sent, inside a JSON string
    (with or without non-ASCII escaped, and with ``/`` escaped as some encoders
    do) and percent-encoded. Longest first, so that no spelling is cut in part
    by a shorter one it contains."""
    forms: set[str] = set()
    for secret in secrets:
        escaped = json.dumps(secret)[1:-1]
        forms.update(
            (
                secret,
                escaped,
                escaped.replace("/", "\\/"),
                json.dumps(secret, ensure_ascii=False)[1:-1],
                quote(secret, safe=""),
                quote(secret),
            )
        )
    return sorted(forms, key=len, reverse=True)


def _scrubbed(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "…")
        return value
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, secrets) for item in value]
    return value


def _require_success(
    response: HttpResponse, method: str, url: str, *, following: bool = False
) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        location = response.headers.get("location")
        where = f" to {redact_url(urljoin(url, location))}" if location else ""
        raise AttemptFailed(
            f"{method} {redact_url(url)}: HTTP {status} redirect{where} not followed",
            response,
            permanent="the redirect cannot be followed"
            if following
            else "the job does not set followRedirects",
        )
    message = f"{method} {redact_url(url)}: HTTP {status}"
    if status >= 500 or status in RETRIED_CLIENT_ERRORS:
        raise AttemptFailed(message, response, retry_after=_retry_after(response))
    kind = "client error" if 400 <= status < 500 else "unexpected status"
    raise AttemptFailed(message, response, permanent=kind)


def _retry_after(response: HttpResponse) -> float | None:
    """The seconds a Retry-After header asks for, read against the response's own
    Date when it has one (same clock as the header), else the daemon's clock."""
    now = datetime.now(UTC)
    date = response.headers.get("date")
    if date:
        try:
            now = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    return retry_after_seconds(response.headers.get("retry-after"), now=now)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _excerpt(response: HttpResponse | None) -> str | None:
    if response is None or not response.body:
        return None
    return storable(response.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")) + (
        "…" if len(response.body) > EXCERPT_BYTES or response.truncated else ""
    )


def _holds_nul(document: Any) -> bool:
    if isinstance(document, str):
        return "\x00" in document
    if isinstance(document, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in document.items())
    if isinstance(document, list):
        return any(_holds_nul(item) for item in document)
    return False


def storable(text: str) -> str:
    """Text PostgreSQL can store: NUL characters shown as U+FFFD."""
    return text.replace("\x00", "\ufffd")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
