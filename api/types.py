"""GraphQL output types, each built from a database row by ``from_row``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from api import store
from api.context import NOW
from api.fire_times import clamp_count, next_runs
from api.pagination import Cursor, page_size, parse_cursor
from shared import models
from shared.actions import split_sensitive
from shared.errors import InvalidInputError
from shared.http import redact_url
from shared.schedule import Schedule as StoredSchedule

JobState = strawberry.enum(
    models.JobState,
    description="ACTIVE jobs run on schedule; PAUSED ones wait for resumeJob; "
    "COMPLETED ones have nothing left to run.",
)
ExecutionStatus = strawberry.enum(
    models.ExecutionStatus,
    description="Where a run is: waiting (PENDING, RETRYING), RUNNING, or "
    "finished (the others).",
)
CatchUpPolicy = strawberry.enum(
    models.CatchUp,
    name="CatchUpPolicy",
    description="Which missed fire times still run: NONE, the LATEST one, or ALL "
    "of them (up to catchUpLimit). Those left out are recorded as MISSED.",
)
OverlapPolicy = strawberry.enum(
    models.Overlap,
    name="OverlapPolicy",
    description="A fire time while an earlier run is unfinished: FORBID records "
    "it as SKIPPED, ALLOW runs it too (up to maxInFlight), REPLACE cancels the "
    "earlier run.",
)


@strawberry.type(description="One page of results does, or does not, have a next.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More results follow.")
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` to get the next page."
    )


@strawberry.type(description="One delivery of an execution, recorded when it ended.")
class Attempt:
    number: int = strawberry.field(description="1 for the first attempt, and so on.")
    daemon_id: strawberry.ID | None = strawberry.field(
        description="The daemon that made the attempt."
    )
    started_at: datetime = strawberry.field(description="When it started.")
    finished_at: datetime = strawberry.field(description="When it ended.")
    outcome: str = strawberry.field(
        description="SUCCEEDED, FAILED, ABANDONED (its daemon went away or "
        "shut down) or CANCELLED."
    )
    http_status: int | None = strawberry.field(description="The response status.")
    error: str | None = strawberry.field(description="Why it failed.")
    response_excerpt: str | None = strawberry.field(
        description="The start of the response body."
    )

    @classmethod
    def from_row(cls, row: models.Attempt) -> Attempt:
        return cls(
            number=row.number,
            daemon_id=_id(row.daemon_id),
            started_at=row.started_at,
            finished_at=row.finished_at,
            outcome=str(row.outcome),
            http_status=row.http_status,
            error=row.error,
            response_excerpt=row.response_excerpt,
        )


@strawberry.type(description="One run of a job, with its attempts.")
class Execution:
    id: strawberry.ID = strawberry.field(description="The execution's id.")
    job_id: strawberry.ID = strawberry.field(description="The job it runs.")
    status: ExecutionStatus = strawberry.field(description="Where the run is.")
    trigger: str = strawberry.field(
        description="SCHEDULE for a fire time, or MANUAL for triggerJob."
    )
    attempt: int = strawberry.field(description="Attempts started so far.")
    scheduled_for: datetime | None = strawberry.field(
        description="The fire time it is for; null for a manual run."
    )
    run_at: datetime = strawberry.field(
        description="When it may run: its fire time plus jitter, or when its "
        "next retry is due."
    )
    covers: int = strawberry.field(
        description="How many fire times it stands for: 1, or more for a MISSED gap."
    )
    reason: str | None = strawberry.field(
        description="Why it was SKIPPED, MISSED or CANCELLED."
    )
    started_at: datetime | None = strawberry.field(
        description="When its latest attempt started."
    )
    finished_at: datetime | None = strawberry.field(description="When it finished.")
    duration_ms: int | None = strawberry.field(
        description="finishedAt - startedAt, in milliseconds."
    )
    http_status: int | None = strawberry.field(
        description="The latest attempt's response status."
    )
    result: JSON | None = strawberry.field(
        description="What the latest attempt returned, as JSON."
    )
    error: str | None = strawberry.field(description="Why the latest attempt failed.")
    row_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Every attempt so far, first to last.")
    async def attempts(self, info: strawberry.Info) -> list[Attempt]:
        rows = await info.context.attempts.load(self.row_id)
        return [Attempt.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: models.Execution) -> Execution:
        duration = None
        if row.started_at is not None and row.finished_at is not None:
            duration = round((row.finished_at - row.started_at).total_seconds() * 1000)
        return cls(
            id=_id(row.id),
            job_id=_id(row.job_id),
            status=models.ExecutionStatus(row.status),
            trigger=models.Trigger(row.trigger).value,
            attempt=row.attempt,
            scheduled_for=row.scheduled_for,
            run_at=row.run_at,
            covers=row.covers,
            reason=row.reason,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=duration,
            http_status=row.http_status,
            result=row.result,
            error=row.error,
            row_id=row.id,
        )


@strawberry.type(description="An execution and its place in the list.")
class ExecutionEdge:
    cursor: str = strawberry.field(description="This execution's position.")
    node: Execution = strawberry.field(description="The execution.")


@strawberry.type(description="A page of executions, newest first.")
class ExecutionConnection:
    edges: list[ExecutionEdge] = strawberry.field(description="The executions.")
    page_info: PageInfo = strawberry.field(description="Where the next page starts.")


@strawberry.type(description="A cron expression and the time zone it runs in.")
class CronSchedule:
    expression: str = strawberry.field(description="The cron expression.")
    timezone: str = strawberry.field(description="The IANA time zone.")


@strawberry.type(description="When a job runs.")
class Schedule:
    description: str = strawberry.field(description="The schedule in plain words.")
    interval_seconds: int | None = strawberry.field(
        description="For an interval: seconds between runs."
    )
    cron: CronSchedule | None = strawberry.field(description="For a cron schedule.")
    at: datetime | None = strawberry.field(description="For a one-off: when.")
    start_at: datetime | None = strawberry.field(
        description="No run before this; intervals count from it."
    )
    end_at: datetime | None = strawberry.field(description="No run after this.")

    @classmethod
    def from_stored(cls, schedule: StoredSchedule) -> Schedule:
        cron = None
        if schedule.kind == "cron":
            cron = CronSchedule(
                expression=schedule.cron_expression or "", timezone=schedule.timezone
            )
        return cls(
            description=schedule.describe(),
            interval_seconds=schedule.interval_seconds,
            cron=cron,
            at=schedule.at,
            start_at=schedule.start_at,
            end_at=schedule.end_at,
        )


@strawberry.type(description="A POST of the job's payload to a URL.")
class WebhookAction:
    headers: JSON | None = strawberry.field(
        description="Extra request headers, secret ones left out."
    )
    secret_header_names: list[str] = strawberry.field(
        description="The names of the headers whose values are secret: sent, "
        "stored encrypted, never shown."
    )
    verify_tls: bool = strawberry.field(description="The certificate is checked.")
    follow_redirects: bool = strawberry.field(description="3xx responses are followed.")
    ca_bundle: str | None = strawberry.field(
        description="PEM certificates the server is verified against instead of "
        "the daemon's trusted authorities; null: the daemon's."
    )
    client_certificate: str | None = strawberry.field(
        description="The PEM client certificate presented to the server (its key "
        "is never shown); null: the daemon's, if any."
    )
    full_url: strawberry.Private[str]

    @strawberry.field(
        description="Where the payload goes. Read-only callers see scheme, host "
        "and the start of the path only, since URLs can carry secrets."
    )
    def url(self, info: strawberry.Info) -> str:
        return visible_url(info, self.full_url)


@strawberry.type(description="A GET of a URL whose JSON response is kept.")
class FetchAction:
    full_url: strawberry.Private[str | None]

    @strawberry.field(
        description="The URL; null fetches the built-in quote. Read-only callers "
        "see scheme, host and the start of the path only."
    )
    def url(self, info: strawberry.Info) -> str | None:
        return visible_url(info, self.full_url)


@strawberry.type(description="What a run does: one of the fields is set.")
class Action:
    webhook: WebhookAction | None = strawberry.field(description="A webhook call.")
    fetch: FetchAction | None = strawberry.field(description="A fetch.")

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> Action:
        if data.get("kind") == "webhook":
            # Credential headers stored in plain text by an earlier release are
            # shown like the sealed ones: by name only.
            plain, sensitive = split_sensitive(data.get("headers") or {})
            hook = WebhookAction(
                full_url=data["url"],
                headers=plain or None,
                secret_header_names=[*data.get("secret_headers", []), *sensitive],
                verify_tls=data.get("verify_tls", True),
                follow_redirects=data.get("follow_redirects", False),
                ca_bundle=data.get("ca_bundle"),
                client_certificate=data.get("client_certificate"),
            )
            return cls(webhook=hook, fetch=None)
        return cls(webhook=None, fetch=FetchAction(full_url=data.get("url")))


def visible_url(info: strawberry.Info, url: str | None) -> str | None:
    """The URL for write-scoped callers; scheme, host and path start for others."""
    if url is None or getattr(info.context, "scope", None) == "write":
        return url
    return redact_url(url)


@strawberry.type(description="How a job handles missed, overlapping and failing runs.")
class Policies:
    catch_up: CatchUpPolicy = strawberry.field(
        description="Which missed fire times still run."
    )
    catch_up_limit: int = strawberry.field(
        description="Under ALL, at most this many missed fire times run."
    )
    misfire_grace_seconds: int = strawberry.field(
        description="A fire time this many seconds late counts as missed; "
        "before that it runs late."
    )
    overlap: OverlapPolicy = strawberry.field(
        description="What a fire time does while an earlier run is unfinished."
    )
    max_in_flight: int = strawberry.field(
        description="Under ALLOW, at most this many unfinished runs."
    )
    jitter_seconds: int = strawberry.field(
        description="Each run starts up to this many seconds after its fire time."
    )
    pause_after_failures: int | None = strawberry.field(
        description="Pause the job after this many failed runs in a row; null: never."
    )
    retry_base_seconds: float | None = strawberry.field(
        description="Seconds before the first retry, doubling per failure; null: "
        "the daemon's TICKWORK_RETRY_BASE_SECONDS (2 by default)."
    )
    retry_max_seconds: float | None = strawberry.field(
        description="Cap on the seconds between retries; null: the daemon's "
        "TICKWORK_RETRY_MAX_SECONDS (300 by default)."
    )
    keep_executions: int | None = strawberry.field(
        description="Keep this many newest finished runs, however old; null: keep "
        "them for TICKWORK_RETENTION_DAYS (30 by default)."
    )
    full_alert_url: strawberry.Private[str | None]

    @strawberry.field(
        description="Where alerts about this job are POSTed; null: the daemon's "
        "TICKWORK_ALERT_URL, and none when that is unset. Read-only callers see "
        "scheme, host and the start of the path only."
    )
    def alert_url(self, info: strawberry.Info) -> str | None:
        return visible_url(info, self.full_alert_url)

    @classmethod
    def from_row(cls, row: models.Job) -> Policies:
        return cls(
            catch_up=models.CatchUp(row.catch_up),
            catch_up_limit=row.catch_up_limit,
            misfire_grace_seconds=row.misfire_grace_seconds,
            overlap=models.Overlap(row.overlap),
            max_in_flight=row.max_in_flight,
            jitter_seconds=row.jitter_seconds,
            pause_after_failures=row.pause_after_failures,
            retry_base_seconds=row.retry_base_seconds,
            retry_max_seconds=row.retry_max_seconds,
            keep_executions=row.keep_executions,
            full_alert_url=row.alert_url,
        )


@strawberry.type(description="A recurring or one-off job.")
class Job:
    id: strawberry.ID = strawberry.field(description="The job's id.")
    key: str | None = strawberry.field(description="Its stable key, if it has one.")
    name: str = strawberry.field(description="Its name.")
    state: JobState = strawberry.field(description="Whether it runs.")
    state_reason: str | None = strawberry.field(
        description="Why it is in this state, when that is not obvious."
    )
    next_run_at: datetime | None = strawberry.field(
        description="When it runs next; null when it will not."
    )
    schedule: Schedule = strawberry.field(description="When it runs.")
    action: Action = strawberry.field(description="What a run does.")
    payload: JSON | None = strawberry.field(description="JSON sent with each call.")
    max_retries: int = strawberry.field(description="Retries after a failed run.")
    timeout_seconds: float = strawberry.field(description="Limit of one attempt.")
    policies: Policies = strawberry.field(
        description="How it handles missed, overlapping and failing runs."
    )
    consecutive_failures: int = strawberry.field(
        description="Failed runs in a row since its last success."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    signed: bool = strawberry.field(
        description="Its webhooks carry a Standard Webhooks signature "
        "(webhook-id, webhook-timestamp, webhook-signature)."
    )
    signing_previous_until: strawberry.Private[datetime | None]
    signing_secret: str | None = strawberry.field(
        default=None,
        description="The signing secret, in the response of the mutation that "
        "made it (createJob, updateJob, rotateSigningSecret) and nowhere else: "
        "keep it then, it is never shown again. Null otherwise.",
    )
    row_id: strawberry.Private[uuid.UUID]
    stored_schedule: strawberry.Private[StoredSchedule]

    @strawberry.field(
        description="Its coming fire times (count: 1 to 100): from nextRunAt, or "
        "for a paused job from where resumeJob would pick up now; none once it is "
        "completed."
    )
    async def next_runs(
        self, info: strawberry.Info, count: int | None = 5
    ) -> list[datetime]:
        if self.state == models.JobState.COMPLETED:
            return []  # without reading the clock
        now = await info.context.clock.load(NOW)
        return next_runs(
            self.state, self.stored_schedule, self.next_run_at, now, clamp_count(count)
        )

    @strawberry.field(
        description="After rotateSigningSecret, requests are also signed with the "
        "previous secret until then; null: with the current one only."
    )
    async def previous_signing_secret_until(
        self, info: strawberry.Info
    ) -> datetime | None:
        if self.signing_previous_until is None:
            return None  # without reading the clock
        now = await info.context.clock.load(NOW)
        return (
            self.signing_previous_until if self.signing_previous_until > now else None
        )

    @strawberry.field(description="Its newest execution, if any.")
    async def last_execution(self, info: strawberry.Info) -> Execution | None:
        row = await info.context.last_execution.load(self.row_id)
        return Execution.from_row(row) if row is not None else None

    @strawberry.field(
        description="Its newest executions (count: 0 to 50), newest first; read "
        "for a whole page of jobs in one query, for a strip of recent results."
    )
    async def recent_runs(
        self, info: strawberry.Info, count: int | None = 10
    ) -> list[Execution]:
        size = min(max(count or 0, 0), RECENT_RUNS_MAX)
        if size == 0:
            return []
        rows = await _recent_runs_loader(info.context).load((self.row_id, size))
        return [Execution.from_row(row) for row in rows]

    @strawberry.field(description="Its executions, newest first.")
    async def executions(
        self,
        info: strawberry.Info,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> ExecutionConnection:
        size, cursor = page_size(first, 20), parse_cursor(after)
        async with info.context.sessions() as session:
            rows = await store.executions_page(session, self.row_id, size, cursor)
        edges = [
            ExecutionEdge(cursor=_cursor(row), node=Execution.from_row(row))
            for row in rows[:size]
        ]
        return ExecutionConnection(edges=edges, page_info=_page_info(edges, rows, size))

    @classmethod
    def from_row(cls, row: models.Job) -> Job:
        schedule = StoredSchedule.model_validate(row.schedule)
        return cls(
            id=_id(row.id),
            key=row.key,
            name=row.name,
            state=models.JobState(row.state),
            state_reason=row.state_reason,
            next_run_at=row.next_run_at,
            schedule=Schedule.from_stored(schedule),
            action=Action.from_stored(row.action),
            payload=row.payload,
            max_retries=row.max_retries,
            timeout_seconds=row.timeout_seconds,
            policies=Policies.from_row(row),
            consecutive_failures=row.consecutive_failures,
            created_at=row.created_at,
            signed=row.signing_secrets is not None,
            signing_previous_until=row.signing_previous_until,
            row_id=row.id,
            stored_schedule=schedule,
        )


@strawberry.type(description="A job and its place in the list.")
class JobEdge:
    cursor: str = strawberry.field(description="This job's position.")
    node: Job = strawberry.field(description="The job.")


@strawberry.type(description="A page of jobs, newest first.")
class JobConnection:
    edges: list[JobEdge] = strawberry.field(description="The jobs.")
    page_info: PageInfo = strawberry.field(description="Where the next page starts.")

    @classmethod
    def from_rows(cls, rows: list[models.Job], size: int) -> JobConnection:
        edges = [
            JobEdge(cursor=_cursor(row), node=Job.from_row(row)) for row in rows[:size]
        ]
        return cls(edges=edges, page_info=_page_info(edges, rows, size))


@strawberry.type(description="A worker process and when it last reported in.")
class Daemon:
    id: strawberry.ID = strawberry.field(description="The daemon's id.")
    hostname: str = strawberry.field(description="The host it runs on.")
    pid: int = strawberry.field(description="Its process id.")
    started_at: datetime = strawberry.field(description="When it started.")
    heartbeat_at: datetime = strawberry.field(description="Its latest heartbeat.")
    state: str = strawberry.field(description="RUNNING, STOPPED or DEAD.")
    concurrency: int = strawberry.field(description="Runs it takes on at once.")
    in_flight: int = strawberry.field(
        description="Executions it is running now (status RUNNING, held by it)."
    )

    @classmethod
    def from_row(cls, row: models.Daemon, in_flight: int = 0) -> Daemon:
        return cls(
            id=_id(row.id),
            hostname=row.hostname,
            pid=row.pid,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            state=str(row.state),
            concurrency=row.concurrency,
            in_flight=in_flight,
        )


@strawberry.type(name="FieldError", description="One input field that was rejected.")
class FieldErrorType:
    field: str = strawberry.field(
        description="Its dotted input path, e.g. schedule.cron.timezone."
    )
    message: str = strawberry.field(description="What is wrong with it.")


@strawberry.type(description="The input was rejected; nothing was stored.")
class InvalidInput:
    message: str = strawberry.field(description="A one-line summary.")
    errors: list[FieldErrorType] = strawberry.field(description="Each bad field.")

    @classmethod
    def from_error(cls, error: InvalidInputError) -> InvalidInput:
        fields = [
            FieldErrorType(field=e.field, message=e.message) for e in error.errors
        ]
        count = len(fields)
        noun = "field is" if count == 1 else "fields are"
        return cls(message=f"{count} input {noun} invalid: {error}", errors=fields)


@strawberry.type(description="No object has this id.")
class NotFound:
    message: str = strawberry.field(description="What was not found.")
    id: strawberry.ID = strawberry.field(description="The id that was asked for.")


@strawberry.type(description="What a schedule means, before it is saved.")
class SchedulePreview:
    description: str = strawberry.field(description="The schedule in plain words.")
    fire_times: list[datetime] = strawberry.field(
        description="Its coming fire times, in UTC, first to last."
    )


@strawberry.type(description="The job was deleted, with its executions.")
class Deleted:
    id: strawberry.ID = strawberry.field(description="The deleted job's id.")


JobResult = Annotated[
    Job | InvalidInput | NotFound,
    strawberry.union("JobResult", description="The job, or why not."),
]
ExecutionResult = Annotated[
    Execution | InvalidInput | NotFound,
    strawberry.union("ExecutionResult", description="The execution, or why not."),
]
SchedulePreviewResult = Annotated[
    SchedulePreview | InvalidInput,
    strawberry.union(
        "SchedulePreviewResult", description="The preview, or what is wrong."
    ),
]
DeleteResult = Annotated[
    Deleted | NotFound,
    strawberry.union("DeleteResult", description="The deletion, or why not."),
]


RECENT_RUNS_MAX = 50


def _recent_runs_loader(context: Any) -> DataLoader[tuple[uuid.UUID, int], Any]:
    """The context's batch loader of (job id, count) -> newest executions.

    Made on first use and kept on the context, so every job of one response
    shares it; it never caches, since a WebSocket context lives long.
    """
    loader = getattr(context, "recent_runs_loader", None)
    if loader is not None:
        return loader

    async def load(keys: Sequence[tuple[uuid.UUID, int]]) -> list[Any]:
        by_count: dict[int, list[uuid.UUID]] = {}
        for job_id, count in keys:
            by_count.setdefault(count, []).append(job_id)
        found: dict[tuple[uuid.UUID, int], list[models.Execution]] = {}
        async with context.sessions() as session:
            for count, job_ids in by_count.items():
                runs = await store.recent_runs(session, job_ids, count)
                for job_id, rows in runs.items():
                    found[(job_id, count)] = rows
        return [found.get(key, []) for key in keys]

    loader = DataLoader(load, cache=False)
    context.recent_runs_loader = loader
    return loader


def _id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


def _cursor(row: models.Job | models.Execution) -> str:
    return Cursor(row.created_at, row.id).encode()


def _page_info(edges: list[Any], rows: list[Any], size: int) -> PageInfo:
    return PageInfo(
        has_next_page=len(rows) > size,
        end_cursor=edges[-1].cursor if edges else None,
    )
