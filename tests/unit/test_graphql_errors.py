"""How GraphQL errors are coded and masked, on a small schema of their own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from api.schema import ErrorCodes, TickworkSchema, should_mask_error


@strawberry.type
class Query:
    @strawberry.field
    def when(self, at: datetime) -> str:
        return at.isoformat()

    @strawberry.field
    def refused(self) -> str:
        raise GraphQLError("after: not ours", extensions={"code": "BAD_USER_INPUT"})

    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("password=hunter2")


class BrokenHook(SchemaExtension):
    """An extension whose own code fails, as a bug in one would."""

    def on_execute(self) -> Iterator[None]:
        raise RuntimeError("hook failed: token=tw_secret")
        yield


def _schema(*extensions: type[SchemaExtension]) -> TickworkSchema:
    return TickworkSchema(
        masks_errors=True,
        query=Query,
        extensions=[
            *extensions,
            lambda: MaskErrors(should_mask_error=should_mask_error),
            ErrorCodes,
        ],
    )


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ when(", None, "GRAPHQL_PARSE_FAILED"),
        ("{ whenn }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query ($at: DateTime!) { when(at: $at) }", {"at": "soon"}, "BAD_USER_INPUT"),
        ("{ refused }", None, "BAD_USER_INPUT"),
    ],
)
async def test_every_error_the_client_caused_carries_a_code(
    query: str, variables: dict | None, code: str
) -> None:
    """Parse, validation and input errors get one; resolvers keep theirs."""
    result = await _schema().execute(query, variable_values=variables)

    [error] = result.errors
    assert error.extensions["code"] == code
    assert error.message != "Unexpected error."


async def test_an_unexpected_error_is_masked_and_gets_no_code() -> None:
    """Nothing in the answer tells a client what went wrong inside."""
    result = await _schema().execute("{ broken }")

    [error] = result.errors
    assert error.formatted == {
        "message": "Unexpected error.",
        "locations": [{"line": 1, "column": 3}],
        "path": ["broken"],
    }


async def test_a_failing_extension_hook_is_masked_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Strawberry answers such a failure outside MaskErrors, with the
    exception's own text; the schema masks it all the same and logs it."""
    result = await _schema(BrokenHook).execute('{ when(at: "2027-01-01T00:00:00Z") }')

    [error] = result.errors
    assert error.message == "Unexpected error."
    assert "tw_secret" not in str(error.formatted)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "tw_secret" in str(record.exc_info[1])
