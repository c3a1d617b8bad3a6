"""The GraphQL schema, and the settings it runs with in each environment.

``python -m api.schema`` writes the SDL to ``api/schema.graphql``; a unit test
checks that the committed file matches this code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult

from api.auth import Authorization
from api.context import is_lost_connection
from api.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from api.mutations import Mutation
from api.queries import Query
from api.subscriptions import Subscription
from api.validation import hide_input_values
from shared.errors import DatabaseUnavailableError, TickworkError

logger = logging.getLogger(__name__)

SDL_PATH = Path(__file__).with_name("schema.graphql")
UNAVAILABLE_MESSAGE = "database unavailable"
UNAVAILABLE_CODE = "DATABASE_UNAVAILABLE"
MASKED_MESSAGE = "Unexpected error."


def create_schema(*, development: bool) -> strawberry.Schema:
    """The schema; production hides introspection, suggestions and internal errors."""
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    if not development:
        extensions += [
            DisableIntrospection,
            lambda: _MaskErrors(
                should_mask_error=should_mask_error, error_message=MASKED_MESSAGE
            ),
        ]
    # Every operation needs a caller, and a mutation a write token.
    extensions.append(Authorization)
    # Last, so that results pass through these two before any other extension:
    # both read each error's original exception, which MaskErrors drops.
    extensions += [DatabaseUnavailable, ErrorCodes]
    return TickworkSchema(
        masks_errors=not development,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not development),
    )


class TickworkSchema(strawberry.Schema):
    """Logs each error by what it means, not every one as a crash.

    Strawberry logs every error at ERROR with a traceback. Only unexpected
    errors deserve that; a lost database is one WARNING line per operation, and
    an error the client caused (a malformed query, a limit, a bad cursor) one
    INFO line, since the client was told and nothing here is broken. With
    ``masks_errors`` (production), no unexpected error's message gets out.
    """

    def __init__(self, *args: Any, masks_errors: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks_errors = masks_errors

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        result = await super().execute(*args, **kwargs)
        # An exception raised in an extension's hook ends the operation before
        # MaskErrors sees the result, and Strawberry then answers with the
        # exception's own message. Mask those here as well.
        if self.masks_errors and result.errors:
            result.errors = [
                _masked(error) if should_mask_error(error) else error
                for error in result.errors
            ]
        return result

    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        operation = execution_context.operation_name if execution_context else None
        for error in errors:
            # Before logging: the same error objects go to the client.
            hide_input_values(error)
        unexpected = []
        lost = False
        for error in errors:
            if is_database_unavailable(error):
                lost = True
            elif is_expected(error):
                logger.info(
                    "graphql: request refused: operation=%s error=%s",
                    operation,
                    error.message,
                )
            else:
                unexpected.append(error)
        if lost:
            logger.warning("graphql: database unavailable: operation=%s", operation)
        if unexpected:
            super().process_errors(unexpected, execution_context)


class DatabaseUnavailable(SchemaExtension):
    """Turns lost or refused database connections into one clear error.

    The message is "database unavailable" with ``extensions.code``
    DATABASE_UNAVAILABLE, in every environment; the driver's text (host names,
    ports) stays in the log.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        _translate_errors(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        _translate_errors(result)
        yield None


class ErrorCodes(SchemaExtension):
    """Gives every expected error an ``extensions.code``, so that a client can
    tell its own mistakes apart without parsing messages.

    GRAPHQL_PARSE_FAILED for a document that does not parse (or is over the
    token limit), GRAPHQL_VALIDATION_FAILED for one the schema or a limit
    refuses, BAD_USER_INPUT for a value of the wrong type. Codes given where an
    error is raised stay; unexpected errors get none (production masks them).
    """

    def on_operation(self) -> Iterator[None]:
        yield
        _label_errors(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        _label_errors(result)
        yield None


def _label_errors(result: object) -> None:
    for error in _errors(result):
        if (error.extensions or {}).get("code") or not is_expected(error):
            continue
        if error.original_error is not None:
            code = "BAD_USER_INPUT"
        elif error.message.startswith("Syntax Error"):
            code = "GRAPHQL_PARSE_FAILED"
        else:
            code = "GRAPHQL_VALIDATION_FAILED"
        error.extensions = {**(error.extensions or {}), "code": code}


def _errors(result: object) -> list[GraphQLError]:
    """The errors of an execution result of any kind. Read as an attribute: an
    isinstance check against a runtime protocol costs tens of microseconds, and
    a subscription event passes here once per subscriber."""
    return getattr(result, "errors", None) or []


def _translate_errors(result: object) -> None:
    if errors := _errors(result):
        result.errors = [_translate(error) for error in errors]  # type: ignore[attr-defined]


class _MaskErrors(MaskErrors):
    """Strawberry's MaskErrors, with a fast way past subscription events that
    carry no errors (nearly all): it checks each event against a runtime
    protocol, once per subscriber, which showed in profiles of a fan-out to
    1,000 subscribers."""

    def on_stream_result(self, result: Any) -> Iterator[None]:
        parts = ("incremental", "completed")
        if _errors(result) or any(getattr(result, part, None) for part in parts):
            yield from super().on_stream_result(result)
        else:
            yield None


def _translate(error: GraphQLError) -> GraphQLError:
    if not is_database_unavailable(error):
        return error
    return GraphQLError(
        UNAVAILABLE_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=DatabaseUnavailableError(UNAVAILABLE_MESSAGE),
        extensions={"code": UNAVAILABLE_CODE},
    )


def _masked(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        MASKED_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
    )


def is_database_unavailable(error: GraphQLError) -> bool:
    """Whether ``error`` comes from a lost or refused database connection."""
    return error.original_error is not None and is_lost_connection(error.original_error)


def should_mask_error(error: GraphQLError) -> bool:
    """Hide errors that nobody raised on purpose.

    Kept visible: the expected errors (see :func:`is_expected`) and a lost
    database (which :class:`DatabaseUnavailable` words the same everywhere).
    """
    return not is_expected(error) and not is_database_unavailable(error)


def is_expected(error: GraphQLError) -> bool:
    """Whether ``error`` was raised on purpose, with a message meant for clients.

    These are errors about the request itself (parsing, validation, the
    limits, variables of the wrong type), GraphQL errors raised in resolvers
    (such as a bad cursor), and Tickwork's own. Anything else that escaped a
    resolver is a fault of ours, whatever its message says.
    """
    original = error.original_error
    return original is None or isinstance(original, GraphQLError | TickworkError)


def sdl() -> str:
    return print_schema(create_schema(development=True)) + "\n"


if __name__ == "__main__":
    SDL_PATH.write_text(sdl())
