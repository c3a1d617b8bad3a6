"""The GraphQL schema, and the settings it runs with in each environment.

``python -m api.schema`` writes the SDL to ``api/schema.graphql``; a unit test
checks that the committed file matches this code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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

from api.mutations import Mutation
from api.queries import Query
from api.subscriptions import Subscription
from shared.errors import TickworkError

SDL_PATH = Path(__file__).with_name("schema.graphql")


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
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not development),
    )


def should_mask_error(error: GraphQLError) -> bool:
    """Hide errors that nobody raised on purpose.

    Kept visible: errors about the request itself (parsing, validation), GraphQL
    errors raised with extensions (such as a bad cursor) and Tickwork's own.
    """
    original = error.original_error
    if original is None:
        return False
    if isinstance(original, GraphQLError) and original.extensions:
        return False
    return not isinstance(original, TickworkError)


def sdl() -> str:
    return print_schema(create_schema(development=True)) + "\n"


if __name__ == "__main__":
    SDL_PATH.write_text(sdl())
