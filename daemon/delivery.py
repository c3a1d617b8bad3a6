"""Performing one attempt of a run: a webhook POST or a fetch, bounded in time
and size, turned into an :class:`Outcome` for the database."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urljoin

from daemon.queue import Claim, Outcome
from shared.http import DeliveryError, HttpClient, HttpResponse, redact_url
from shared.retry import retry_delay
from shared.settings import Settings

logger = logging.getLogger(__name__)

# What an attempt keeps of a response for people to read.
EXCERPT_BYTES = 2 * 1024
# The largest fetch result stored; a larger body fails the attempt.
RESULT_BYTES = 64 * 1024

IDEMPOTENCY_HEADER = "Idempotency-Key"


class AttemptFailed(Exception):
    """The target answered, but not with success; the message says how."""

    def __init__(self, message: str, response: HttpResponse | None = None) -> None:
        super().__init__(message)
        self.response = response


async def perform(claim: Claim, client: HttpClient, settings: Settings) -> Outcome:
    """Run one attempt of ``claim`` and describe how it ended. Never raises for a
    failure of the target: that is an outcome like any other."""
    started = time.monotonic()
    response: HttpResponse | None = None
    result: Any = None
    error: str | None = None
    try:
        if claim.action["kind"] == "webhook":
            response = await _webhook(claim, client)
        else:
            response, result = await _fetch(claim, client, settings)
    except DeliveryError as exc:
        error = str(exc)
    except AttemptFailed as exc:
        error, response = str(exc), exc.response
    return outcome(
        claim,
        settings,
        duration=time.monotonic() - started,
        error=None if error is None else storable(error),
        response=response,
        result=result,
    )


def outcome(
    claim: Claim,
    settings: Settings,
    *,
    duration: float,
    error: str | None,
    response: HttpResponse | None = None,
    result: Any = None,
) -> Outcome:
    """How an attempt ended: succeeded, or failed and retrying or final."""
    failed = error is not None
    if not failed:
        status = "SUCCEEDED"
        delay = 0.0
    elif claim.failures + 1 > claim.max_retries:
        status = "FAILED"
        delay = 0.0
    else:
        status = "RETRYING"
        delay = retry_delay(
            claim.failures + 1,
            base=settings.retry_base_seconds,
            cap=settings.retry_max_seconds,
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


async def _webhook(claim: Claim, client: HttpClient) -> HttpResponse:
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
    headers = {
        **action.get("headers", {}),
        "content-type": "application/json",
        IDEMPOTENCY_HEADER: str(claim.execution_id),
    }
    response = await client.request(
        "POST",
        url,
        time_limit=claim.timeout_seconds,
        headers=headers,
        content=json.dumps(body, separators=(",", ":")).encode(),
        verify_tls=action.get("verify_tls", True),
        follow_redirects=action.get("follow_redirects", False),
        max_body=EXCERPT_BYTES,
    )
    _require_success(response, "POST", url)
    return response


async def _fetch(
    claim: Claim, client: HttpClient, settings: Settings
) -> tuple[HttpResponse, Any]:
    url = claim.action.get("url") or settings.resolved_quote_url()
    response = await client.request(
        "GET",
        url,
        time_limit=claim.timeout_seconds,
        headers={
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
        )
    try:
        document = json.loads(response.body)
    except (UnicodeDecodeError, ValueError):
        kind = response.headers.get("content-type", "no content type")
        raise AttemptFailed(
            f"GET {redact_url(url)}: response is not JSON ({kind})", response
        ) from None
    if _holds_nul(document):
        # PostgreSQL's JSON cannot hold a NUL character.
        raise AttemptFailed(
            f"GET {redact_url(url)}: the JSON holds NUL characters, which cannot "
            "be stored",
            response,
        )
    return response, document


def _require_success(response: HttpResponse, method: str, url: str) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        location = response.headers.get("location")
        where = f" to {redact_url(urljoin(url, location))}" if location else ""
        raise AttemptFailed(
            f"{method} {redact_url(url)}: HTTP {status} redirect{where} not followed "
            "(the job does not set followRedirects)",
            response,
        )
    raise AttemptFailed(f"{method} {redact_url(url)}: HTTP {status}", response)


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
