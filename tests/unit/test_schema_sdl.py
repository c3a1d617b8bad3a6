"""The committed GraphQL schema is the one the code serves."""

from __future__ import annotations

from api.schema import SDL_PATH, sdl


def test_the_committed_sdl_matches_the_code() -> None:
    """api/schema.graphql equals the printed schema (`python -m api.schema`)."""
    assert SDL_PATH.read_text() == sdl()


def test_every_type_and_field_has_a_description() -> None:
    """Each object and input type, and each of their fields, carries a description."""
    from graphql import GraphQLInputObjectType, GraphQLObjectType

    from api.schema import create_schema

    schema = create_schema(development=True)._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or not isinstance(
            graphql_type, GraphQLObjectType | GraphQLInputObjectType
        ):
            continue
        if not graphql_type.description:
            missing.append(name)
        missing += [
            f"{name}.{field_name}"
            for field_name, field in graphql_type.fields.items()
            if not field.description
        ]
    assert missing == []
