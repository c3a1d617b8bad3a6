"""The /graphql route: HTTP and graphql-transport-ws, with GraphiQL served offline."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from fastapi.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.context import get_context
from api.schema import create_schema

CDN = "https://unpkg.com/"
# The web build copies each file GraphiQL loads to web/dist/vendor/<its unpkg
# path>, which the app serves at /vendor/; the integrity hashes still match.
VENDOR = "/vendor/"


class OfflineGraphQLRouter(GraphQLRouter):
    """A GraphQLRouter whose GraphiQL page loads nothing from the internet."""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.graphql_ide_html.replace(CDN, VENDOR))


def create_router(*, development: bool) -> GraphQLRouter:
    """The router; GraphiQL only in development."""
    return OfflineGraphQLRouter(
        create_schema(development=development),
        path="/graphql",
        graphql_ide="graphiql" if development else None,
        context_getter=get_context,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=20,
    )
