"""The Query root: jobs, one job, one execution, the daemons."""

from __future__ import annotations

import strawberry

from api import store
from api.pagination import page_size, parse_cursor, parse_id
from api.types import Daemon, Execution, Job, JobConnection


@strawberry.type(description="Read jobs, executions and daemons.")
class Query:
    @strawberry.field(description="Every job, newest first, a page at a time.")
    async def jobs(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
    ) -> JobConnection:
        size, cursor = page_size(first, 50), parse_cursor(after)
        async with info.context.sessions() as session:
            rows = await store.jobs_page(session, size, cursor)
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

    @strawberry.field(description="The worker daemons, newest first.")
    async def daemons(self, info: strawberry.Info) -> list[Daemon]:
        async with info.context.sessions() as session:
            rows = await store.list_daemons(session)
        return [Daemon.from_row(row) for row in rows]
