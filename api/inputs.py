"""GraphQL input types: what createJob, updateJob and previewSchedule accept.

Fields left out arrive as ``UNSET``, so an update can tell "not given" from null.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from api.types import CatchUpPolicy, OverlapPolicy


@strawberry.input(description="A cron expression evaluated in a time zone.")
class CronInput:
    expression: str = strawberry.field(
        description="Five fields or an @macro, as in Debian cron."
    )
    timezone: str | None = strawberry.field(
        default="UTC", description="IANA time zone name, e.g. Europe/Berlin."
    )


@strawberry.input(
    description="When a job runs: exactly one of intervalSeconds, cron or at."
)
class ScheduleInput:
    interval_seconds: int | None = strawberry.field(
        default=UNSET, description="Run every this many seconds (at least 1)."
    )
    cron: CronInput | None = strawberry.field(
        default=UNSET, description="Run on a cron schedule."
    )
    at: datetime | None = strawberry.field(
        default=UNSET, description="Run once at this instant (with a UTC offset)."
    )
    start_at: datetime | None = strawberry.field(
        default=UNSET,
        description="No run before this instant; intervals count from it "
        "(default: now).",
    )
    end_at: datetime | None = strawberry.field(
        default=UNSET, description="No run after this instant."
    )


@strawberry.input(description="POST the job's payload as JSON to a URL.")
class WebhookInput:
    url: str = strawberry.field(description="An absolute http:// or https:// URL.")
    headers: JSON | None = strawberry.field(
        default=UNSET,
        description="Extra request headers, as {name: value}. Those whose name "
        "says they carry a credential (Authorization, Cookie, X-Api-Key, any "
        "name with token, secret, key, password, session, signature...) are "
        "kept as secret headers.",
    )
    secret_headers: JSON | None = strawberry.field(
        default=UNSET,
        description="Headers whose values are stored encrypted and never shown, "
        "as {name: value}. A null value keeps the job's stored value of that "
        "header. Left out on updateJob: the stored secret headers are kept, as "
        "long as the URL stays on the same scheme, host and port.",
    )
    verify_tls: bool | None = strawberry.field(
        default=True, description="Check the server's TLS certificate."
    )
    follow_redirects: bool | None = strawberry.field(
        default=False, description="Follow 3xx responses instead of failing."
    )
    ca_bundle: str | None = strawberry.field(
        default=UNSET,
        description="PEM certificates of the authorities the server's certificate "
        "is verified against, instead of the daemon's trusted ones (for a server "
        "with a private CA, without turning verifyTls off).",
    )
    client_certificate: str | None = strawberry.field(
        default=UNSET,
        description="A PEM client certificate to present to the server, instead "
        "of the daemon's; needs clientKey.",
    )
    client_key: str | None = strawberry.field(
        default=UNSET,
        description="The unencrypted PEM private key of clientCertificate, stored "
        "encrypted and never shown. Left out on updateJob: the stored key is "
        "kept while the certificate and the URL's scheme, host and port stay.",
    )


@strawberry.input(description="GET a URL and keep its JSON response as the result.")
class FetchInput:
    url: str | None = strawberry.field(
        default=UNSET, description="The URL; none fetches the built-in quote."
    )


@strawberry.input(description="What a run does: exactly one of webhook or fetch.")
class ActionInput:
    webhook: WebhookInput | None = strawberry.field(
        default=UNSET, description="POST to a webhook."
    )
    fetch: FetchInput | None = strawberry.field(
        default=UNSET, description="Fetch a URL."
    )


@strawberry.input(
    description="Scheduling policies. A field left out takes its default on "
    "createJob and keeps the job's value on updateJob. Null does the same, except "
    "for the policies whose default is null (pauseAfterFailures, retryBaseSeconds, "
    "retryMaxSeconds, keepExecutions, alertUrl): null sets them back to it."
)
class PoliciesInput:
    catch_up: CatchUpPolicy | None = strawberry.field(
        default=UNSET, description="Which missed fire times still run (LATEST)."
    )
    catch_up_limit: int | None = strawberry.field(
        default=UNSET,
        description="Under ALL, at most this many missed times run, 1 to 1000 (10).",
    )
    misfire_grace_seconds: int | None = strawberry.field(
        default=UNSET,
        description="Seconds late before a fire time counts as missed, "
        "0 to 86400 (60).",
    )
    overlap: OverlapPolicy | None = strawberry.field(
        default=UNSET,
        description="What a fire time does while a run is unfinished (FORBID).",
    )
    max_in_flight: int | None = strawberry.field(
        default=UNSET,
        description="Under ALLOW, at most this many unfinished runs, 1 to 1000 (5).",
    )
    jitter_seconds: int | None = strawberry.field(
        default=UNSET,
        description="Start each run up to this many seconds late, 0 to 3600 (0).",
    )
    pause_after_failures: int | None = strawberry.field(
        default=UNSET,
        description="Pause after this many failed runs in a row, 1 to 1000; "
        "null turns auto-pause off (the default).",
    )
    retry_base_seconds: float | None = strawberry.field(
        default=UNSET,
        description="Seconds before the first retry, more than 0 and at most "
        "86400, and at most retryMaxSeconds; null: the daemon's default.",
    )
    retry_max_seconds: float | None = strawberry.field(
        default=UNSET,
        description="Cap on the seconds between retries, more than 0 and at most "
        "86400; null: the daemon's default.",
    )
    keep_executions: int | None = strawberry.field(
        default=UNSET,
        description="Keep this many newest finished runs, 1 to 100000, however "
        "old; null: the global retention in days (the default).",
    )
    alert_url: str | None = strawberry.field(
        default=UNSET,
        description="An http:// or https:// URL that hears of failed runs, "
        "auto-pauses and missed fire times; null: the daemon's "
        "TICKWORK_ALERT_URL, if set (the default).",
    )


@strawberry.input(description="A new job. A key that exists updates that job.")
class CreateJobInput:
    name: str = strawberry.field(description="A name for people, 1 to 200 characters.")
    key: str | None = strawberry.field(
        default=UNSET,
        description="A stable identifier of your choosing; creating a job with a "
        "key that exists updates that job in place.",
    )
    schedule: ScheduleInput | None = strawberry.field(
        default=UNSET, description="When the job runs. Required."
    )
    action: ActionInput | None = strawberry.field(
        default=UNSET,
        description="What a run does. Optional when the payload holds "
        "webhook_url or callback_url: then it is a webhook to that URL.",
    )
    payload: JSON | None = strawberry.field(
        default=UNSET, description="JSON sent with each webhook call."
    )
    max_retries: int | None = strawberry.field(
        default=3, description="Retries after a failed run, 0 to 100."
    )
    timeout_seconds: float | None = strawberry.field(
        default=30.0, description="Time limit of one attempt, up to 3600 seconds."
    )
    policies: PoliciesInput | None = strawberry.field(
        default=UNSET,
        description="Scheduling policies; those left out take their defaults.",
    )
    signing_secret: str | None = strawberry.field(
        default=UNSET,
        description="The key that signs this webhook's requests, as whsec_ and "
        "the base64 of 24 to 64 random bytes. Left out: a new job gets one "
        "generated (shown once, in this response's signingSecret) and a job "
        "updated by its key keeps its own.",
    )


@strawberry.input(description="Changes to a job; fields left out stay as they are.")
class UpdateJobInput:
    name: str | None = strawberry.field(default=UNSET, description="A new name.")
    schedule: ScheduleInput | None = strawberry.field(
        default=UNSET, description="A new schedule; the next run time follows it."
    )
    action: ActionInput | None = strawberry.field(
        default=UNSET, description="A new action."
    )
    payload: JSON | None = strawberry.field(
        default=UNSET, description="A new payload; null removes it."
    )
    max_retries: int | None = strawberry.field(
        default=UNSET, description="Retries after a failed run, 0 to 100."
    )
    timeout_seconds: float | None = strawberry.field(
        default=UNSET, description="Time limit of one attempt, up to 3600 seconds."
    )
    policies: PoliciesInput | None = strawberry.field(
        default=UNSET,
        description="Policies to change; those left out stay as they are.",
    )
