"""Turn job input into stored column values, or one InvalidInputError.

Every problem found is reported at once, each under its dotted input path, so a
client can mark all the bad fields in one round trip.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from graphql import GraphQLError
from strawberry import UNSET

from api.fire_times import timing
from api.inputs import (
    ActionInput,
    CreateJobInput,
    PoliciesInput,
    ScheduleInput,
    UpdateJobInput,
)
from shared import models
from shared.actions import Action, build_action, split_sensitive, target_url
from shared.errors import FieldError, InvalidInputError
from shared.firing import Policies
from shared.schedule import Schedule, build_schedule
from shared.secrets import (
    KEY_SETTING,
    SecretBox,
    SecretKeyError,
    open_headers,
    seal_headers,
    seal_signing,
)
from shared.signing import InvalidSecretError, check_secret

MAX_NAME = 200
MAX_RETRIES = 100
MAX_TIMEOUT_SECONDS = 3600.0
# Every delivery carries the payload, so it stays small.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RETRY_SECONDS = 86_400.0

# The policy columns a new job gets when its input leaves them out.
DEFAULT_POLICIES: dict[str, Any] = {
    **dataclasses.asdict(Policies()),
    "pause_after_failures": None,
    "retry_base_seconds": None,
    "retry_max_seconds": None,
    "keep_executions": None,
    "alert_url": None,
}
# Each whole-number policy: its column, its input name and the values it accepts.
POLICY_RANGES = {
    "catch_up_limit": ("catchUpLimit", 1, 1000),
    "misfire_grace_seconds": ("misfireGraceSeconds", 0, 86_400),
    "max_in_flight": ("maxInFlight", 1, 1000),
    "jitter_seconds": ("jitterSeconds", 0, 3600),
    "pause_after_failures": ("pauseAfterFailures", 1, 1000),
    "keep_executions": ("keepExecutions", 1, 100_000),
}
# The retry backoff policies, in seconds: more than 0, at most MAX_RETRY_SECONDS.
RETRY_POLICIES = {
    "retry_base_seconds": "retryBaseSeconds",
    "retry_max_seconds": "retryMaxSeconds",
}
# Policies whose default is null: an explicit null sets them back to it.
NULLABLE_POLICIES = frozenset(
    {"pause_after_failures", "keep_executions", "alert_url", *RETRY_POLICIES}
)

T = TypeVar("T")


def create_values(
    spec: CreateJobInput, now: datetime, box: SecretBox | None = None
) -> dict[str, Any]:
    """Column values for a new job (or for the job with the same key).

    Secret headers are sealed with ``box``; the signing secret too, when the
    input gives one (``signing_secrets`` is then among the values). Without a
    box, any secret is refused.
    """
    errors = unstorable_text(spec)
    if errors:
        raise InvalidInputError(errors)
    name = _collect(errors, lambda: _name(spec.name))
    max_retries = _collect(errors, lambda: _max_retries(spec.max_retries))
    timeout = _collect(errors, lambda: _timeout(spec.timeout_seconds))
    if spec.schedule is None or spec.schedule is UNSET:
        errors.append(FieldError("schedule", "a schedule is required"))
        schedule = None
    else:
        schedule = _collect(errors, lambda: parse_schedule(spec.schedule, now))
    payload = None if spec.payload is UNSET else spec.payload
    _collect(errors, lambda: _payload(payload))
    action = _collect(errors, lambda: _action(spec.action, payload))
    policies = _policies(spec.policies, errors)
    _retry_bounds(policies, DEFAULT_POLICIES, errors)
    key = spec.key if spec.key not in (None, UNSET) else None
    if key is not None and not (0 < len(key.strip()) <= MAX_NAME):
        errors.append(FieldError("key", f"must be 1 to {MAX_NAME} characters"))
    secrets = {}
    if action is not None:
        secrets = _collect(errors, lambda: _seal_headers(action, box, None)) or {}
        secrets.update(
            _collect(errors, lambda: _seal_client_key(action, box, None)) or {}
        )
        secrets.update(_signing_input(spec.signing_secret, action, box, errors))
    if errors:
        raise InvalidInputError(errors)

    return {
        "key": key.strip() if key else None,
        "name": name,
        "schedule": schedule.model_dump(mode="json"),
        "action": action.model_dump(mode="json"),
        "payload": payload,
        "max_retries": max_retries,
        "timeout_seconds": timeout,
        **DEFAULT_POLICIES,
        **policies,
        **timing(schedule, now),
        **secrets,
    }


def update_values(
    spec: UpdateJobInput,
    now: datetime,
    job: models.Job,
    box: SecretBox | None = None,
) -> dict[str, Any]:
    """Column values for the fields ``spec`` gives; the rest stay as ``job`` has
    them.

    A new schedule also moves the next run time; other changes leave it alone.
    Policies that depend on each other are checked against the job's values of
    those left out. A new action's secret headers are sealed with ``box``,
    taking the values it keeps from the job; with a box, headers an earlier
    release stored in plain text move into the sealed ones.
    """
    errors = unstorable_text(spec)
    if errors:
        raise InvalidInputError(errors)
    values: dict[str, Any] = {}
    if _given(spec.name):
        values["name"] = _collect(errors, lambda: _name(spec.name))
    if _given(spec.max_retries):
        values["max_retries"] = _collect(errors, lambda: _max_retries(spec.max_retries))
    if _given(spec.timeout_seconds):
        values["timeout_seconds"] = _collect(
            errors, lambda: _timeout(spec.timeout_seconds)
        )
    if spec.payload is not UNSET:
        values["payload"] = _collect(errors, lambda: _payload(spec.payload))
    if _given(spec.action):
        action = _collect(errors, lambda: _action(spec.action, spec.payload, job))
        values["action"] = action.model_dump(mode="json") if action else None
        if action is not None:
            values.update(
                _collect(errors, lambda: _seal_headers(action, box, job)) or {}
            )
            values.update(
                _collect(errors, lambda: _seal_client_key(action, box, job)) or {}
            )
    elif box is not None:
        values.update(seal_plain_secrets(job, box))
    policies = _policies(spec.policies, errors)
    values.update(policies)
    stored = {column: getattr(job, column) for column in RETRY_POLICIES}
    _retry_bounds(policies, stored, errors)
    schedule = None
    if _given(spec.schedule):
        schedule = _collect(errors, lambda: parse_schedule(spec.schedule, now))
    if errors:
        raise InvalidInputError(errors)

    if schedule is not None:
        values["schedule"] = schedule.model_dump(mode="json")
        values.update(timing(schedule, now))
    return values


def unstorable_text(value: Any, path: str = "") -> list[FieldError]:
    """Every string in the input that PostgreSQL cannot store, named by its
    input path: one holding a NUL character, which text and JSON refuse, or a
    lone surrogate, which JSON can spell ("\\ud800") but UTF-8 cannot."""
    if isinstance(value, str):
        problem = text_problem(value)
        return [FieldError(path, problem)] if problem else []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            error
            for field in dataclasses.fields(value)
            for error in unstorable_text(
                getattr(value, field.name), _join(path, _camel(field.name))
            )
        ]
    if isinstance(value, dict):
        errors = []
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else None
            # A name that cannot be stored cannot be sent back as it is either.
            shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
            inner = _join(path, shown)
            if problem:
                errors.append(FieldError(inner, f"names {problem}"))
            errors.extend(unstorable_text(item, inner))
        return errors
    if isinstance(value, list):
        return [
            error
            for index, item in enumerate(value)
            for error in unstorable_text(item, f"{path}[{index}]")
        ]
    return []


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def text_argument(value: str | None, argument: str) -> str | None:
    """``value``, or a GraphQL error naming ``argument`` when it cannot be
    compared with stored text."""
    problem = text_problem(value) if value else None
    if problem:
        raise GraphQLError(
            f"{argument}: {problem}",
            extensions={"code": "BAD_USER_INPUT", "field": argument},
        )
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _collect(errors: list[FieldError], check: Callable[[], T]) -> T | None:
    try:
        return check()
    except InvalidInputError as exc:
        errors.extend(exc.errors)
        return None


def _given(value: object) -> bool:
    return value is not UNSET and value is not None


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if not name:
        raise InvalidInputError.single("name", "must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInputError.single("name", f"must be at most {MAX_NAME} characters")
    return name


def _max_retries(value: int | None) -> int:
    if value is None or not 0 <= value <= MAX_RETRIES:
        raise InvalidInputError.single("maxRetries", f"must be 0 to {MAX_RETRIES}")
    return value


def _timeout(value: float | None) -> float:
    if (
        value is None
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT_SECONDS
    ):
        raise InvalidInputError.single(
            "timeoutSeconds", f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g}"
        )
    return float(value)


def _policies(spec: PoliciesInput | None, errors: list[FieldError]) -> dict[str, Any]:
    """The policy columns ``spec`` gives; a bad value goes to ``errors``.

    Null counts as not given, except for the NULLABLE_POLICIES: there it sets
    the policy back to null (auto-pause off, the daemon's backoff, the global
    retention, the daemon's alert URL).
    """
    if not _given(spec):
        return {}
    values: dict[str, Any] = {}
    if _given(spec.catch_up):
        values["catch_up"] = spec.catch_up
    if _given(spec.overlap):
        values["overlap"] = spec.overlap
    for column, (name, low, high) in POLICY_RANGES.items():
        value = getattr(spec, column)
        nullable = column in NULLABLE_POLICIES
        if value is UNSET or (value is None and not nullable):
            continue
        if value is not None and not low <= value <= high:
            message = f"must be {low} to {high}" + (", or null" if nullable else "")
            errors.append(FieldError(f"policies.{name}", message))
            continue
        values[column] = value
    for column, name in RETRY_POLICIES.items():
        value = getattr(spec, column)
        if value is UNSET:
            continue
        if value is not None and not (
            math.isfinite(value) and 0 < value <= MAX_RETRY_SECONDS
        ):
            message = f"must be more than 0 and at most {MAX_RETRY_SECONDS:g}, or null"
            errors.append(FieldError(f"policies.{name}", message))
            continue
        values[column] = None if value is None else float(value)
    if spec.alert_url is not UNSET:
        url = spec.alert_url
        if url is not None:
            url = _collect(errors, lambda: target_url(url, "policies.alertUrl"))
        values["alert_url"] = url
    return values


def _retry_bounds(
    given: dict[str, Any], stored: dict[str, Any], errors: list[FieldError]
) -> None:
    """The first retry must not wait longer than the cap, when both are set.

    ``given`` holds the valid policies of the input and ``stored`` what the others
    are; the error names the one given, the base when both are.
    """
    fields = {f"policies.{name}" for name in RETRY_POLICIES.values()}
    if any(error.field in fields for error in errors):
        return  # a value is already refused; its bound means nothing yet
    values = {**stored, **given}
    base, cap = values["retry_base_seconds"], values["retry_max_seconds"]
    if base is None or cap is None or base <= cap:
        return
    if "retry_base_seconds" in given:
        message = f"must be at most retryMaxSeconds ({cap:g})"
        errors.append(FieldError("policies.retryBaseSeconds", message))
    else:
        message = f"must be at least retryBaseSeconds ({base:g})"
        errors.append(FieldError("policies.retryMaxSeconds", message))


def parse_schedule(spec: ScheduleInput, now: datetime) -> Schedule:
    """The schedule ``spec`` describes; an interval without startAt starts at
    ``now``. Raises InvalidInputError naming each bad ``schedule.*`` field."""
    cron = spec.cron if _given(spec.cron) else None
    return build_schedule(
        interval_seconds=_or_none(spec.interval_seconds),
        cron_expression=cron.expression if cron else None,
        timezone=_or_none(cron.timezone) if cron else None,
        at=_or_none(spec.at),
        start_at=_or_none(spec.start_at),
        end_at=_or_none(spec.end_at),
        now=now,
    )


def _payload(value: Any) -> Any:
    """The payload, if it can be stored and sent: valid UTF-8 JSON of at most
    MAX_PAYLOAD_BYTES, since every delivery carries it."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError.single(
            "payload", f"is not valid Unicode text: {exc.reason}"
        ) from exc
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidInputError.single(
            "payload", f"is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES}"
        )
    return value


def _action(
    spec: ActionInput | None, payload: Any, job: models.Job | None = None
) -> Action:
    """The action ``spec`` describes; on an update (``job`` given), secret
    headers left out keep the job's."""
    webhook = fetch = None
    if _given(spec) and _given(spec.webhook):
        hook = spec.webhook
        secret_headers = _or_none(hook.secret_headers)
        if hook.secret_headers is UNSET and job is not None:
            secret_headers = _kept_by_default(job, hook.headers)
        webhook = {
            "url": hook.url,
            "headers": _or_none(hook.headers),
            "secret_headers": secret_headers,
            "verify_tls": hook.verify_tls is not False,
            "follow_redirects": bool(hook.follow_redirects),
            "ca_bundle": _or_none(hook.ca_bundle),
            "client_certificate": _or_none(hook.client_certificate),
            "client_key": _or_none(hook.client_key),
        }
    if _given(spec) and _given(spec.fetch):
        fetch = {"url": _or_none(spec.fetch.url)}
    return build_action(webhook=webhook, fetch=fetch, payload=_or_none(payload))


def _or_none(value: T) -> T | None:
    return None if value is UNSET else value


def _kept_by_default(job: models.Job, headers: Any) -> dict[str, None]:
    """The job's secret headers that an update leaving secretHeaders out keeps:
    all but those the new plain headers name again."""
    given = (
        {str(name).lower() for name in headers} if isinstance(headers, dict) else set()
    )
    return {
        name: None for name in stored_secret_names(job) if name.lower() not in given
    }


def stored_secret_names(job: models.Job) -> list[str]:
    """The names of a job's secret headers, sealed or (from an earlier release)
    plain."""
    _, plain_secrets = split_sensitive(job.action.get("headers") or {})
    return [*job.action.get("secret_headers", []), *plain_secrets]


def _seal_headers(
    action: Action, box: SecretBox | None, job: models.Job | None
) -> dict[str, Any]:
    """``{"secret_headers": token}`` for the action's secret headers.

    Values the action keeps come from ``job``, and only while the URL stays on
    the job's scheme, host and port: otherwise a write-only credential could
    be read by pointing the job at another server.
    """
    field = "action.webhook.secretHeaders"
    if action.kind == "fetch":
        field = "action.fetch.url"
    values = dict(action.secrets)
    kept = action.kept_secrets
    if kept:
        if job is None:
            raise InvalidInputError(
                [FieldError(f"{field}.{name}", "give a value") for name in kept]
            )
        stored = {name.lower(): value for name, value in _stored(job, box).items()}
        if _origin(action.url) != _origin(job.action.get("url")):
            raise InvalidInputError(
                [
                    FieldError(
                        f"{field}.{name}",
                        "the URL moved to another host: give the value again",
                    )
                    for name in kept
                ]
            )
        missing = [name for name in kept if name.lower() not in stored]
        if missing:
            raise InvalidInputError(
                [FieldError(f"{field}.{n}", "has no stored value") for n in missing]
            )
        values.update({name: stored[name.lower()] for name in kept})
    if values and box is None:
        raise InvalidInputError.single(
            field, f"cannot be stored: {KEY_SETTING} is not set on the API"
        )
    return {"secret_headers": seal_headers(box, values) if values else None}


def _seal_client_key(
    action: Action, box: SecretBox | None, job: models.Job | None
) -> dict[str, Any]:
    """``{"client_key": token}`` for the key of the webhook's client certificate.

    Without a new key, the job's stays, but only for the same certificate and
    the same scheme, host and port: the key must not follow the job elsewhere.
    """
    field = "action.webhook.clientKey"
    if action.client_certificate is None:
        return {"client_key": None}
    if action.client_key is None:
        if (
            job is None
            or job.client_key is None
            or job.action.get("client_certificate") != action.client_certificate
            or _origin(action.url) != _origin(job.action.get("url"))
        ):
            raise InvalidInputError.single(
                field, "give the private key of clientCertificate"
            )
        return {"client_key": job.client_key}
    if box is None:
        raise InvalidInputError.single(
            field, f"cannot be stored: {KEY_SETTING} is not set on the API"
        )
    return {"client_key": box.seal({"client_key": action.client_key})}


def _stored(job: models.Job, box: SecretBox | None) -> dict[str, str]:
    """A job's secret headers, decrypted, with any still stored in plain text."""
    _, plain_secrets = split_sensitive(job.action.get("headers") or {})
    try:
        return {**plain_secrets, **open_headers(box, job.secret_headers)}
    except SecretKeyError as exc:
        raise InvalidInputError.single(
            "action.webhook.secretHeaders", str(exc)
        ) from None


def seal_plain_secrets(job: models.Job, box: SecretBox) -> dict[str, Any]:
    """Values that move a job's plain credential headers (stored by an earlier
    release) into its sealed ones; empty when it has none."""
    headers = job.action.get("headers") or {}
    plain, sensitive = split_sensitive(headers)
    if not sensitive:
        return {}
    try:
        sealed = open_headers(box, job.secret_headers)
    except SecretKeyError:
        return {}  # left as it is; the daemon still sends them
    names = sorted({*job.action.get("secret_headers", []), *sensitive}, key=str.lower)
    action = {**job.action, "headers": plain, "secret_headers": names}
    return {
        "action": action,
        "secret_headers": seal_headers(box, {**sensitive, **sealed}),
    }


def _signing_input(
    secret: str | None, action: Action, box: SecretBox | None, errors: list[FieldError]
) -> dict[str, Any]:
    """The signing secret column values of a secret given as input, if any."""
    if secret is UNSET or secret is None:
        return {}
    if action.kind != "webhook":
        errors.append(FieldError("signingSecret", "only webhooks are signed"))
        return {}
    try:
        check_secret(secret)
    except InvalidSecretError as exc:
        errors.append(FieldError("signingSecret", str(exc)))
        return {}
    if box is None:
        errors.append(
            FieldError(
                "signingSecret",
                f"cannot be stored: {KEY_SETTING} is not set on the API",
            )
        )
        return {}
    return {
        "signing_secrets": seal_signing(box, [secret]),
        "signing_previous_until": None,
    }


def _origin(url: str | None) -> tuple[str, str, int | None] | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


# GraphQL's own input errors quote the value they refused ("... Found: {...}",
# "String cannot represent a non string value: ..."), which can be a secret
# header or signing secret. The part before the quote says what was wrong.
_INVALID_VALUE = re.compile(r"^(.*? has invalid value(?: at [^:]*)?: )(.*)$", re.S)
_FOUND = re.compile(r"[.,]?\s*found$", re.I)
# Where a refused value may hold a secret: a secret field itself, or an object
# or list, which may hold anything (a whole webhook input, say).
_SECRET_PATH = re.compile(r"secret|header", re.I)


def hide_input_values(error: GraphQLError) -> None:
    """Strip the quoted value from a GraphQL input error, in place, when it may
    hold a secret, so that neither the response nor the log repeats it.

    Plain values of other fields stay quoted ("Value cannot represent a
    DateTime: "tomorrow""): they help the caller and hide nothing.
    """
    message = error.message
    match = _INVALID_VALUE.match(message)
    if match is not None:
        where, what = match.groups()
        if _SECRET_PATH.search(where) or "{" in what or "[" in what:
            error.message = where + _what_was_wrong(what)
    elif " cannot represent " in message and ("{" in message or "[" in message):
        error.message = _what_was_wrong(message)


def _what_was_wrong(message: str) -> str:
    head = message.split(":", 1)[0]
    head = _FOUND.sub("", head.rstrip()).rstrip(" .")
    return head + ("" if head.endswith("?") else ".")
