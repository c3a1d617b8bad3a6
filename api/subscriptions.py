"""The Subscription root: executions as they are created and change status."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
import tenacity
from graphql import GraphQLError

from api import store
from api.broadcaster import RESYNC
from api.context import is_lost_connection
from api.pagination import parse_id
from api.types import Execution
from shared.retry import reconnect_policy


@strawberry.type(description="Live updates.")
class Subscription:
    @strawberry.subscription(
        description="Each execution as it is created and each time its status "
        "changes; of one job, or of every job when jobId is left out."
    )
    async def execution_updates(
        self, info: strawberry.Info, job_id: strawberry.ID | None = strawberry.UNSET
    ) -> AsyncGenerator[Execution, None]:
        wanted = parse_id(job_id)
        if job_id not in (None, strawberry.UNSET) and wanted is None:
            raise GraphQLError(
                "jobId: not a job id", extensions={"code": "BAD_USER_INPUT"}
            )

        context = info.context
        async with context.broadcaster.subscribe(wanted) as subscriber:
            async with context.sessions() as session:
                since = await store.db_now(session)
            while True:
                update = await subscriber.queue.get()
                if update is not RESYNC:
                    yield Execution.from_row(update)
                    continue
                # Updates were lost while the listener reconnected: send what
                # may have changed since the last look. The database may still
                # be settling, so the re-read waits for it rather than ending
                # the subscription.
                async for attempt in reconnect_policy(what="resync").copy(
                    retry=tenacity.retry_if_exception(is_lost_connection)
                ):
                    with attempt:
                        async with context.sessions() as session:
                            rows, since = await store.recent_executions(
                                session, wanted, since
                            )
                for row in rows:
                    yield Execution.from_row(row)
