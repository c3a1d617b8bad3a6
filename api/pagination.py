"""Keyset pages ordered by (created_at DESC, id DESC): opaque cursors, page
sizes and the filters of page queries."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from graphql import GraphQLError

MAX_PAGE = 200


@dataclass(frozen=True)
class Cursor:
    """The position after one row: its creation time and id."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps({"v": 1, "t": self.created_at.isoformat(), "id": str(self.id)})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """The cursor, or a GraphQL error a client can read if it is not one of ours."""
        try:
            data = json.loads(base64.urlsafe_b64decode(value.encode()))
            return cls(datetime.fromisoformat(data["t"]), uuid.UUID(data["id"]))
        except (binascii.Error, ValueError, TypeError, KeyError) as exc:
            raise GraphQLError(
                "after: not a cursor from this API",
                extensions={"code": "BAD_USER_INPUT", "field": "after"},
            ) from exc


def page_size(first: int | None, default: int, argument: str = "first") -> int:
    """``first``, or ``default`` when it is left out.

    Above MAX_PAGE is an error, not a shorter page: a client that asked for
    more than it may have learns the limit at once, instead of taking a clamped
    page for all there is or paging on without knowing why pages are short.
    """
    if first is None:
        return default
    if not 0 <= first <= MAX_PAGE:
        raise GraphQLError(
            f"{argument}: must be 0 to {MAX_PAGE} (the page size limit)",
            extensions={"code": "BAD_USER_INPUT", "field": argument},
        )
    return first


def text_filter(value: str | None, argument: str) -> str | None:
    """A filter on stored text, or None for none; a GraphQL error when it holds
    a NUL character, which PostgreSQL text cannot store or compare."""
    if not value:
        return None
    if "\x00" in value:
        raise GraphQLError(
            f"{argument}: must not contain NUL characters",
            extensions={"code": "BAD_USER_INPUT", "field": argument},
        )
    return value


def parse_cursor(after: str | None) -> Cursor | None:
    return Cursor.decode(after) if after else None


def parse_id(value: str | None) -> uuid.UUID | None:
    """The UUID, or None when ``value`` is not one (an unknown id, to the caller)."""
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
