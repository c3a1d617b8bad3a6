"""The audit trail: who changed what, and when.

Each mutation calls :func:`record` inside its own transaction, so an event
exists exactly when its change was committed. The `tickwork token` commands
write theirs in ``shared/auth.py``. ``auditEvents`` reads the trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import strawberry
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.scalars import JSON

from api.pagination import Cursor
from api.types import PageInfo
from shared.errors import TickworkError
from shared.models import AuditEvent as AuditRow


async def record(
    session: AsyncSession,
    info: strawberry.Info,
    action: str,
    job_id: uuid.UUID | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add who did ``action`` (a mutation's name) to ``job_id`` to the session's
    transaction; it is written when that commits, and not if it rolls back."""
    principal = info.context.principal
    if principal is None:
        # The Authorization extension lets no operation run without a caller.
        raise TickworkError(f"{action}: no caller to record in the audit trail")
    session.add(
        AuditRow(
            actor_kind=principal.kind,
            actor=principal.name,
            token_id=principal.token_id,
            action=action,
            job_id=job_id,
            detail=detail,
        )
    )


async def events_page(
    session: AsyncSession, size: int, after: Cursor | None, job_id: uuid.UUID | None
) -> Sequence[AuditRow]:
    """Up to ``size + 1`` events, newest first; the extra one says more follow."""
    query = select(AuditRow)
    if job_id is not None:
        query = query.where(col(AuditRow.job_id) == job_id)
    if after is not None:
        query = query.where(
            sa.tuple_(col(AuditRow.created_at), col(AuditRow.id))
            < sa.tuple_(sa.literal(after.created_at), sa.literal(after.id))
        )
    query = query.order_by(col(AuditRow.created_at).desc(), col(AuditRow.id).desc())
    return (await session.exec(query.limit(size + 1))).all()


@strawberry.type(description="One change: who made it, what it was, and when.")
class AuditEvent:
    id: strawberry.ID = strawberry.field(description="The event's id.")
    created_at: datetime = strawberry.field(
        description="When the change was committed (the database's clock)."
    )
    actor: str = strawberry.field(
        description="The token's name; or bootstrap (TICKWORK_BOOTSTRAP_TOKEN), "
        "open (tickwork up without authentication) or cli (the tickwork command)."
    )
    actor_kind: str = strawberry.field(
        description="token, bootstrap, open or cli: what `actor` names."
    )
    token_id: strawberry.ID | None = strawberry.field(
        description="The acting token's id, or the token a cli event is about."
    )
    action: str = strawberry.field(
        description="The mutation, such as pauseJob, or createToken / revokeToken."
    )
    job_id: strawberry.ID | None = strawberry.field(
        description="The job changed, if any; it may have been deleted since."
    )
    detail: JSON | None = strawberry.field(
        description="More about the change, such as the fields updateJob set."
    )

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(row.id)),
            created_at=_required(row.created_at),
            actor=row.actor,
            actor_kind=row.actor_kind,
            token_id=_id(row.token_id),
            action=row.action,
            job_id=_id(row.job_id),
            detail=row.detail,
        )


@strawberry.type(description="An audit event and its place in the trail.")
class AuditEventEdge:
    cursor: str = strawberry.field(description="This event's position.")
    node: AuditEvent = strawberry.field(description="The event.")


@strawberry.type(description="A page of the audit trail, newest first.")
class AuditEventConnection:
    edges: list[AuditEventEdge] = strawberry.field(description="The events.")
    page_info: PageInfo = strawberry.field(description="Where the next page starts.")

    @classmethod
    def from_rows(cls, rows: Sequence[AuditRow], size: int) -> AuditEventConnection:
        edges = [
            AuditEventEdge(
                cursor=Cursor(_required(row.created_at), row.id).encode(),
                node=AuditEvent.from_row(row),
            )
            for row in rows[:size]
        ]
        page_info = PageInfo(
            has_next_page=len(rows) > size,
            end_cursor=edges[-1].cursor if edges else None,
        )
        return cls(edges=edges, page_info=page_info)


def _id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


def _required(value: datetime | None) -> datetime:
    # The column is NOT NULL with a database default; only an unsaved row lacks it.
    if value is None:
        raise TickworkError("audit event read before it was saved")
    return value
