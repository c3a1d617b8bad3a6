"""Schemathesis fuzzes every query and mutation of the production API.

Each operation gets a fixed number of generated requests (derandomized, so a
run is repeatable and bounded), sent to the real app with its lifespan, on a
fresh PostgreSQL database, with a write token. No answer may be a server error,
and no error may be anything but one of ours: a masked "Unexpected error."
would be a crash that production hides, so it fails the run too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import graphql
import pytest
import schemathesis
from api_helpers import api_client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from api.schema import sdl

# Enough to reach past input validation on every operation in a few seconds;
# TICKWORK_FUZZ_EXAMPLES=500 makes a deeper run by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("TICKWORK_FUZZ_EXAMPLES", "20"))
# Every error the API means to give carries a code; with a write token and a
# database up, these are the only ones a request can earn.
EXPECTED_CODES = {"BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}


def _json_nodes() -> st.SearchStrategy[graphql.ValueNode]:
    """JSON values as GraphQL literals, for payloads and webhook headers."""
    names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,12}\Z")
    leaves = st.one_of(
        st.text(max_size=40).map(nodes.String),
        st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.booleans().map(nodes.Boolean),
        st.just(nodes.Null),
    )

    def containers(
        children: st.SearchStrategy[graphql.ValueNode],
    ) -> st.SearchStrategy[graphql.ValueNode]:
        fields = st.dictionaries(names, children, max_size=4).map(
            lambda items: nodes.Object(
                [
                    graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                    for k, v in items.items()
                ]
            )
        )
        return st.lists(children, max_size=4).map(nodes.List) | fields

    return st.recursive(leaves, containers, max_leaves=12)


schemathesis.graphql.scalar("JSON", _json_nodes())
# Introspection is off in production, so the schema comes from the code.
schema = schemathesis.graphql.from_file(sdl())
# Requests the schema allows: those it does not are refused by graphql-core's
# validation before any of our code runs, so they would spend the examples on
# testing graphql-core.
schema.config.generation.update(modes=["positive"], deterministic=True)


@pytest.fixture
def production_client(database_url: str) -> Iterator[TestClient]:
    with api_client(database_url, env="production") as client:
        yield client


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_crashes_the_api_or_leaks_an_error(
    case: schemathesis.Case, production_client: TestClient
) -> None:
    """Every answer is a 200 whose errors, if any, are ones the API meant."""
    request = case.as_transport_kwargs(base_url=f"{production_client.base_url}/graphql")
    # The client keeps the token; a per-request cookie jar is deprecated.
    request.pop("cookies", None)
    response = production_client.request(**request)

    # Schema-valid input the API refuses with BAD_USER_INPUT is by design (an
    # unknown time zone, say), so that check is left out.
    case.validate_response(
        response,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    assert response.status_code == 200, response.text
    for error in response.json().get("errors", []):
        assert _is_ours(error), error


def _is_ours(error: dict[str, Any]) -> bool:
    code = (error.get("extensions") or {}).get("code")
    return code in EXPECTED_CODES
