"""The Query root: jobs, one job, one execution, the daemons, schedule previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from api import audit, store
from api.fire_times import clamp_count, fire_times
from api.inputs import ScheduleInput
from api.pagination import page_size, parse_cursor, parse_id, text_filter
from api.types import (
    Daemon,
    Execution,
    InvalidInput,
    Job,
    JobConnection,
    JobState,
    SchedulePreview,
    SchedulePreviewResult,
)
from api.validation import parse_schedule, text_argument
from shared import models
from shared.errors import InvalidInputError
from shared.schedule import check_instant, next_fire_time


@strawberry.type(
    description="Read jobs, executions and daemons, and preview schedules."
)
class Query:
    @strawberry.field(description="Every job, newest first, a page at a time.")
    async def jobs(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
        name: Annotated[
            str | None,
            strawberry.argument(
                description="Only jobs whose name contains this, ignoring case."
            ),
        ] = None,
        state: Annotated[
            JobState | None,
            strawberry.argument(description="Only jobs in this state."),
        ] = None,
    ) -> JobConnection:
        size, cursor = page_size(first, 50), parse_cursor(after)
        async with info.context.sessions() as session:
            rows = await store.jobs_page(
                session,
                size,
                cursor,
                name=text_filter(text_argument(name, "name"), "name"),
                state=models.JobState(state) if state is not None else None,
            )
        return JobConnection.from_rows(list(rows), size)

    @strawberry.field(description="One job, or null if no job has this id.")
    async def job(self, info: strawberry.Info, id: strawberry.ID) -> Job | None:
        job_id = parse_id(id)
        if job_id is None:
            return None
        async with info.context.sessions() as session:
            row = await store.get_job(session, job_id)
        return Job.from_row(row) if row is not None else None

    @strawberry.field(description="One execution, or null if none has this id.")
    async def execution(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> Execution | None:
        execution_id = parse_id(id)
        if execution_id is None:
            return None
        async with info.context.sessions() as session:
            row = await store.get_execution(session, execution_id)
        return Execution.from_row(row) if row is not None else None

    @strawberry.field(
        description="Who changed what: the audit trail, newest first, a page at "
        "a time; with jobId, only the events about that job."
    )
    async def audit_events(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
        job_id: strawberry.ID | None = strawberry.UNSET,
    ) -> audit.AuditEventConnection:
        size, cursor = page_size(first, 50), parse_cursor(after)
        wanted = None
        if job_id not in (None, strawberry.UNSET):
            wanted = parse_id(job_id)
            if wanted is None:  # not an id, so no job's events
                return audit.AuditEventConnection.from_rows([], size)
        async with info.context.sessions() as session:
            rows = await audit.events_page(session, size, cursor, wanted)
        return audit.AuditEventConnection.from_rows(rows, size)

    @strawberry.field(description="The worker daemons, newest first.")
    async def daemons(self, info: strawberry.Info) -> list[Daemon]:
        async with info.context.sessions() as session:
            rows = await store.list_daemons(session)
            in_flight = await store.runs_in_flight(session)
        return [Daemon.from_row(row, in_flight.get(row.id, 0)) for row in rows]

    @strawberry.field(
        description="Check a schedule without saving it: its description and its "
        "next count (1 to 100) fire times after `after` (default: now). An "
        "interval without startAt counts from `after`."
    )
    async def preview_schedule(
        self,
        info: strawberry.Info,
        schedule: ScheduleInput,
        count: int | None = 5,
        after: datetime | None = strawberry.UNSET,
    ) -> SchedulePreviewResult:
        if after is None or after is strawberry.UNSET:
            async with info.context.sessions() as session:
                after = await store.db_now(session)
        try:
            errors = check_instant(after, "after")
            if errors:
                raise InvalidInputError(errors)
            parsed = parse_schedule(schedule, after)
        except InvalidInputError as exc:
            return InvalidInput.from_error(exc)
        first = next_fire_time(parsed, after)
        return SchedulePreview(
            description=parsed.describe(),
            fire_times=fire_times(parsed, first, clamp_count(count)),
        )
