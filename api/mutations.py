"""The Mutation root. Each mutation is one transaction; those that change jobs
also wake the daemons.

Expected failures are results, not errors: InvalidInput names each bad field and
NotFound the unknown id, and in both cases nothing is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession

from api import store
from api.audit import record
from api.fire_times import resumed_timing
from api.inputs import (
    ActionInput,
    CreateJobInput,
    FetchInput,
    ScheduleInput,
    UpdateJobInput,
)
from api.pagination import parse_id
from api.types import (
    Deleted,
    DeleteResult,
    Execution,
    ExecutionResult,
    InvalidInput,
    Job,
    JobResult,
    NotFound,
)
from api.validation import create_values, unstorable_text, update_values
from shared import models
from shared.errors import InvalidInputError
from shared.schedule import Schedule
from shared.secrets import (
    SecretBox,
    SecretKeyError,
    open_signing,
    require_box,
    seal_signing,
    secret_box,
)
from shared.signing import InvalidSecretError, check_secret, new_secret

T = TypeVar("T")

CANCELLED_BY_USER = "cancelled by a user"
# How long requests stay signed with the previous secret after a rotation, so
# receivers can be moved to the new one; dropPreviousSigningSecret ends it.
PREVIOUS_SECRET_GRACE = timedelta(days=7)
RETRIED_BY_USER = "retried by a user"

JobChange = Callable[[AsyncSession, models.Job, datetime], Awaitable[T]]

TEST_JOB = CreateJobInput(
    name="Test job",
    schedule=ScheduleInput(interval_seconds=5),
    action=ActionInput(fetch=FetchInput()),
)


@strawberry.type(description="Create, change, run and delete jobs.")
class Mutation:
    @strawberry.mutation(
        description="Create a job; with a key that exists, update that job instead."
    )
    async def create_job(
        self, info: strawberry.Info, input: CreateJobInput
    ) -> JobResult:
        return await _create(info, input)

    @strawberry.mutation(description="Change the fields of a job that are given.")
    async def update_job(
        self, info: strawberry.Info, id: strawberry.ID, input: UpdateJobInput
    ) -> JobResult:
        async def change(session: AsyncSession, job: models.Job, now: datetime) -> Job:
            box = _box(info)
            values = update_values(input, now, job, box)
            if job.state == models.JobState.PAUSED and "state" in values:
                # A new schedule moves the next run, but only resumeJob resumes.
                values.pop("state")
                values.pop("state_reason")
            _apply(job, values, now)
            shown = None
            if job.action["kind"] == "webhook" and not job.signing_secrets and box:
                # A job made before signing existed, or a fetch that became a
                # webhook: it is signed from now on.
                shown = new_secret()
                _apply(job, {"signing_secrets": seal_signing(box, [shown])}, now)
            return _with_secret(Job.from_row(job), shown)

        return await _with_job(info, id, change)

    @strawberry.mutation(description="Stop running a job until resumeJob.")
    async def pause_job(self, info: strawberry.Info, id: strawberry.ID) -> JobResult:
        async def change(session: AsyncSession, job: models.Job, now: datetime) -> Job:
            if job.state == models.JobState.ACTIVE:
                _apply(
                    job, {"state": models.JobState.PAUSED, "state_reason": None}, now
                )
            return Job.from_row(job)

        return await _with_job(info, id, change)

    @strawberry.mutation(
        description="Run a paused job again, from its first fire time after now; "
        "the fire times it missed while paused do not run."
    )
    async def resume_job(self, info: strawberry.Info, id: strawberry.ID) -> JobResult:
        async def change(session: AsyncSession, job: models.Job, now: datetime) -> Job:
            if job.state == models.JobState.PAUSED:
                schedule = Schedule.model_validate(job.schedule)
                # Resuming starts the failure count afresh; otherwise a job
                # paused after N failures would pause again on its next one.
                values = {**resumed_timing(schedule, now), "consecutive_failures": 0}
                _apply(job, values, now)
            return Job.from_row(job)

        return await _with_job(info, id, change)

    @strawberry.mutation(description="Run a job now, whatever its schedule.")
    async def trigger_job(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> ExecutionResult:
        async def change(
            session: AsyncSession, job: models.Job, now: datetime
        ) -> Execution:
            row = await store.insert_manual_execution(session, job.id)
            return Execution.from_row(row)

        return await _with_job(info, id, change)

    @strawberry.mutation(
        description="Cancel a PENDING, RUNNING or RETRYING execution; a running "
        "attempt is told to stop and whatever it reports later is ignored."
    )
    async def cancel_execution(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> ExecutionResult:
        execution_id = parse_id(id)
        if execution_id is None:
            return _not_found(id, "execution")
        async with info.context.sessions.begin() as session:
            cancelled = await store.cancel_executions(
                session, [execution_id], CANCELLED_BY_USER
            )
            row = await store.get_execution(session, execution_id)
            if cancelled and row is not None:
                await _record_execution(session, info, row.job_id, execution_id)
        if row is None:
            return _not_found(id, "execution")
        if not cancelled:
            # Only unfinished executions are cancelled, so this one had finished.
            error = InvalidInputError.single("id", f"execution is already {row.status}")
            return InvalidInput.from_error(error)
        return Execution.from_row(row)

    @strawberry.mutation(
        description="Run a FAILED or CANCELLED execution again now, with all its "
        "retries afresh; its earlier attempts are kept."
    )
    async def retry_execution(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> ExecutionResult:
        execution_id = parse_id(id)
        if execution_id is None:
            return _not_found(id, "execution")
        async with info.context.sessions.begin() as session:
            row = await store.retry_execution(session, execution_id, RETRIED_BY_USER)
            if row is not None:
                await _record_execution(session, info, row.job_id, execution_id)
                await store.wake_daemons(session)
            else:
                row = await store.get_execution(session, execution_id)
                if row is None:
                    return _not_found(id, "execution")
                status = models.ExecutionStatus(row.status).value
                error = InvalidInputError.single(
                    "id",
                    f"execution is {status}: only FAILED or CANCELLED ones "
                    "can be retried",
                )
                return InvalidInput.from_error(error)
        return Execution.from_row(row)

    @strawberry.mutation(description="Delete a job and its executions.")
    async def delete_job(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> DeleteResult:
        job_id = parse_id(id)
        if job_id is not None:
            async with info.context.sessions.begin() as session:
                deleted = await store.delete_job(session, job_id)
                if deleted:
                    await record(session, info, info.field_name, job_id)
                    await store.wake_daemons(session)
            if deleted:
                return Deleted(id=id)
        return _not_found(id)

    @strawberry.mutation(
        description="Give a webhook job a new signing secret: generated (shown "
        "once, in signingSecret) unless given. Requests are signed with both the "
        "new and the previous secret for 7 days, or until "
        "dropPreviousSigningSecret."
    )
    async def rotate_signing_secret(
        self,
        info: strawberry.Info,
        id: strawberry.ID,
        secret: str | None = strawberry.UNSET,
    ) -> JobResult:
        async def change(session: AsyncSession, job: models.Job, now: datetime) -> Job:
            box = _signing_box(info, job)
            given = secret not in (None, strawberry.UNSET)
            if given:
                errors = unstorable_text(secret, "secret")
                if errors:
                    raise InvalidInputError(errors)
                try:
                    check_secret(secret)
                except InvalidSecretError as exc:
                    raise InvalidInputError.single("secret", str(exc)) from None
            new = secret if given else new_secret()
            current = _open_signing(box, job)
            _apply(
                job,
                {
                    "signing_secrets": seal_signing(box, [new, *current[:1]]),
                    "signing_previous_until": now + PREVIOUS_SECRET_GRACE
                    if current
                    else None,
                },
                now,
            )
            return _with_secret(Job.from_row(job), None if given else new)

        return await _with_job(info, id, change)

    @strawberry.mutation(
        description="Stop signing a webhook job's requests with its previous "
        "secret, once every receiver checks the new one."
    )
    async def drop_previous_signing_secret(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> JobResult:
        async def change(session: AsyncSession, job: models.Job, now: datetime) -> Job:
            box = _signing_box(info, job)
            current = _open_signing(box, job)
            if len(current) > 1 or job.signing_previous_until is not None:
                values = {
                    "signing_secrets": seal_signing(box, current[:1]),
                    "signing_previous_until": None,
                }
                _apply(job, values, now)
            return Job.from_row(job)

        return await _with_job(info, id, change)

    @strawberry.mutation(
        description="Create a job that fetches the built-in quote every 5 seconds."
    )
    async def create_test_job(self, info: strawberry.Info) -> JobResult:
        return await _create(info, TEST_JOB)


async def _create(info: strawberry.Info, spec: CreateJobInput) -> Job | InvalidInput:
    box = _box(info)
    try:
        async with info.context.sessions.begin() as session:
            now = await store.db_now(session)
            values = create_values(spec, now, box)
            # Without a signing secret in the input, a new webhook job gets a
            # generated one, and a job updated by its key keeps its own.
            generated = None
            keep = "signing_secrets" not in values
            if keep and values["action"]["kind"] == "webhook" and box is not None:
                generated = new_secret()
                values["signing_secrets"] = seal_signing(box, [generated])
            row = await store.upsert_job(session, values, keep_signing=keep)
            if generated and row.signing_secrets != values["signing_secrets"]:
                generated = None  # the job kept the secret it had
            detail = {"name": row.name, "key": row.key}
            await record(session, info, info.field_name, row.id, detail)
            await store.wake_daemons(session)
    except InvalidInputError as exc:
        return InvalidInput.from_error(exc)
    return _with_secret(Job.from_row(row), generated)


def _box(info: strawberry.Info) -> SecretBox | None:
    return secret_box(info.context.state.settings)


def _signing_box(info: strawberry.Info, job: models.Job) -> SecretBox:
    """The box to seal a webhook job's signing secrets with, or InvalidInputError."""
    if job.action.get("kind") != "webhook":
        raise InvalidInputError.single("id", "only webhook jobs are signed")
    try:
        return require_box(info.context.state.settings)
    except SecretKeyError as exc:
        raise InvalidInputError.single("id", str(exc)) from None


def _open_signing(box: SecretBox, job: models.Job) -> list[str]:
    try:
        return open_signing(box, job.signing_secrets)
    except SecretKeyError as exc:
        raise InvalidInputError.single("id", str(exc)) from None


def _with_secret(job: Job, secret: str | None) -> Job:
    """The job as a mutation that made its signing secret returns it."""
    job.signing_secret = secret
    return job


async def _with_job(
    info: strawberry.Info, id: strawberry.ID, change: JobChange[T]
) -> T | InvalidInput | NotFound:
    """Lock the job, apply ``change`` and wake the daemons, in one transaction.

    An InvalidInputError from ``change`` rolls the transaction back.
    """
    job_id = parse_id(id)
    if job_id is None:
        return _not_found(id)
    try:
        async with info.context.sessions.begin() as session:
            job = await store.get_job(session, job_id, for_update=True)
            if job is None:
                return _not_found(id)
            result = await change(session, job, await store.db_now(session))
            await record(session, info, info.field_name, job.id, _given(info))
            await store.wake_daemons(session)
    except InvalidInputError as exc:
        return InvalidInput.from_error(exc)
    return result


async def _record_execution(
    session: AsyncSession,
    info: strawberry.Info,
    job_id: uuid.UUID,
    execution_id: uuid.UUID,
) -> None:
    detail = {"execution_id": str(execution_id)}
    await record(session, info, info.field_name, job_id, detail)


def _given(info: strawberry.Info) -> dict[str, object] | None:
    """For the audit trail: the names of the input fields a mutation was given.

    Names only: values may hold secrets (headers, signing secrets).
    """
    given = info.selected_fields[0].arguments.get("input")
    return {"fields": sorted(given)} if isinstance(given, dict) else None


def _apply(job: models.Job, values: dict[str, object], now: datetime) -> None:
    for name, value in values.items():
        setattr(job, name, value)
    job.updated_at = now


def _not_found(id: strawberry.ID, kind: str = "job") -> NotFound:
    return NotFound(message=f"no {kind} with id {id}", id=id)
