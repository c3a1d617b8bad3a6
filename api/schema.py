"""The GraphQL schema, and the settings it runs with in each environment.

``python -m api.schema`` writes the SDL to ``api/schema.graphql``; a unit test
checks that the committed file matches this code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

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
from strawberry.types import ExecutionContext

from api.context import is_lost_connection
from api.mutations import Mutation
from api.queries import Query
from api.subscriptions import Subscription
from shared.errors import DatabaseUnavailableError, TickworkError

logger = logging.getLogger(__name__)

SDL_PATH = Path(__file__).with_name("schema.graphql")
UNAVAILABLE_MESSAGE = "database unavailable"
UNAVAILABLE_CODE = "DATABASE_UNAVAILABLE"


def create_schema(*, development: bool) -> strawberry.Schema:
    """The schema; production hides introspection, suggestions and internal errors."""
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxAliasesLimiter(max_alias_count=15),
        lambda: MaxTokensLimiter(max_token_count=2000),
    ]
    if not development:
        extensions += [
            DisableIntrospection,
            lambda: MaskErrors(should_mask_error=should_mask_error),
        ]
    # Last, so that its results pass through it before any other extension.
    extensions.append(DatabaseUnavailable)
    return TickworkSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not development),
    )


class TickworkSchema(strawberry.Schema):
    """Logs a lost database as one line per operation, not a traceback per field."""

    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        unexpected = [e for e in errors if not is_database_unavailable(e)]
        if len(unexpected) < len(errors):
            operation = execution_context.operation_name if execution_context else None
            logger.warning("graphql: database unavailable: operation=%s", operation)
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


@runtime_checkable
class _ResultWithErrors(Protocol):
    errors: list[GraphQLError] | None


def _translate_errors(result: object) -> None:
    if isinstance(result, _ResultWithErrors) and result.errors:
        result.errors = [_translate(error) for error in result.errors]


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


def is_database_unavailable(error: GraphQLError) -> bool:
    """Whether ``error`` comes from a lost or refused database connection."""
    return error.original_error is not None and is_lost_connection(error.original_error)


def should_mask_error(error: GraphQLError) -> bool:
    """Hide errors that nobody raised on purpose.

    Kept visible: errors about the request itself (parsing, validation), GraphQL
    errors raised with extensions (such as a bad cursor), Tickwork's own, and a
    lost database (which :class:`DatabaseUnavailable` words the same everywhere).
    """
    original = error.original_error
    if original is None:
        return False
    if isinstance(original, GraphQLError) and original.extensions:
        return False
    if is_database_unavailable(error):
        return False
    return not isinstance(original, TickworkError)


def sdl() -> str:
    return print_schema(create_schema(development=True)) + "\n"


if __name__ == "__main__":
    SDL_PATH.write_text(sdl())
