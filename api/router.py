"""The /graphql route: HTTP and graphql-transport-ws, with GraphiQL served offline."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from fastapi import Request
from fastapi.responses import HTMLResponse
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from api.auth import AuthRefused
from api.context import Context, get_context
from api.limits import (
    MAX_OPERATIONS_PER_CONNECTION,
    LimitedTransportWSHandler,
    NestedTooDeeplyError,
    decode_json,
)
from api.schema import create_schema

CDN = "https://unpkg.com/"
# The web build copies each file GraphiQL loads to web/dist/vendor/<its unpkg
# path>, which the app serves at /vendor/; the integrity hashes still match.
VENDOR = "/vendor/"


class OfflineGraphQLRouter(GraphQLRouter):
    """A GraphQLRouter whose GraphiQL page loads nothing from the internet."""

    graphql_transport_ws_handler_class = LimitedTransportWSHandler

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.graphql_ide_html.replace(CDN, VENDOR))

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """Authenticate a WebSocket by its connection_init token or its cookie.

        Strawberry has already refused handshakes from foreign origins, so a
        cookie here was sent by our own page. A refusal closes with 4403.
        """
        auth = context.state.auth
        try:
            principal, token = await auth.from_websocket(
                context.request, context.connection_params
            )
        except AuthRefused as exc:
            raise ConnectionRejectionError(
                {"code": exc.code, "message": exc.message}
            ) from None
        context.principal, context.credential = principal, token
        return UNSET

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry's own says "Unable to parse" for any JSON it cannot read;
        # JSON nested too deeply is readable, and refused with its own reason,
        # as are bytes that are no text: json.loads raises no JSONDecodeError
        # for those, and they would otherwise end as a server error.
        try:
            return self.decode_json(data)
        except NestedTooDeeplyError as exc:
            raise HTTPException(400, f"Request body: {exc.msg}") from exc
        except UnicodeDecodeError as exc:
            message = f"Request body: not valid UTF-8 (byte {exc.start})"
            raise HTTPException(400, message) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc


def create_router(*, development: bool) -> GraphQLRouter:
    """The router; GraphiQL only in development."""
    return OfflineGraphQLRouter(
        create_schema(development=development),
        path="/graphql",
        graphql_ide="graphiql" if development else None,
        context_getter=get_context,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=MAX_OPERATIONS_PER_CONNECTION,
    )
