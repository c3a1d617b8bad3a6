"""How much one GraphQL request or WebSocket connection may ask of the API.

Each limit answers with an error that names it, before the work it bounds is
done: the body size and JSON nesting before the request is parsed, the depth,
alias and token counts before it runs, and the operations per WebSocket
connection before one more starts. (The page size, checked before a query goes
to the database, is in ``api.pagination``.)
"""

from __future__ import annotations

import json
from typing import Any

from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    SubscribeMessage,
)

# A body holds the document and its variables. The largest legitimate one is a
# job whose 64 KiB payload a client wrote with \u escapes (six bytes each), so
# one MiB leaves room while keeping each request's memory small.
MAX_BODY_BYTES = 1024 * 1024
# graphql-core stops parsing documents nested deeper than 200 levels; JSON in
# bodies and WebSocket messages gets the same bound, so a payload can nest as
# deeply whichever way it is sent.
MAX_JSON_DEPTH = 200
# Levels below the root field. The deepest query the schema allows has 7
# (jobs ... attempts { number }); introspection fields are not counted.
MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
# Queries, mutations and subscriptions running at once on one WebSocket.
MAX_OPERATIONS_PER_CONNECTION = 20

BODY_TOO_LARGE = "request body too large: {path} accepts at most {limit} bytes"
NESTED_TOO_DEEPLY = "JSON nested deeper than {limit} levels"
TOO_MANY_OPERATIONS = (
    "too many operations on this connection: at most {limit} may run at once; "
    "complete one first"
)


class NestedTooDeeplyError(json.JSONDecodeError):
    """JSON nested deeper than MAX_JSON_DEPTH: refused as JSON we cannot read.

    A JSONDecodeError, so that a WebSocket message nested too deeply closes the
    connection as any unreadable message does (4400).
    """

    def __init__(self, document: str | bytes) -> None:
        text = document if isinstance(document, str) else ""
        super().__init__(NESTED_TOO_DEEPLY.format(limit=MAX_JSON_DEPTH), text, 0)


def decode_json(data: str | bytes) -> Any:
    """``json.loads``, refusing JSON nested deeper than MAX_JSON_DEPTH.

    The standard decoder recurses once per level, so a body of many thousand
    brackets exhausts the stack (RecursionError) before any check of ours runs.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise NestedTooDeeplyError(data) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise NestedTooDeeplyError(data)
    return value


def json_depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests; a scalar is 0.

    Iterative, so that it cannot itself run out of stack.
    """
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


class BodyLimit:
    """ASGI middleware: a request body on ``path`` over ``max_bytes`` gets 413.

    The bytes are counted as they stream in, so a body sent in chunks without
    Content-Length (or under a false one) is stopped at the limit too; a
    declared Content-Length over the limit is refused before anything is read.
    Starlette has a body limit of its own, but over a declared length it
    answers only "Content Too Large", whatever handler is set.
    """

    def __init__(self, app: ASGIApp, *, path: str, max_bytes: int) -> None:
        self.app = app
        self.path = path
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = BODY_TOO_LARGE.format(path=self.path, limit=self.max_bytes)
        response = PlainTextResponse(message, status_code=413)
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    """Raised from ``receive`` to stop the application reading on."""


# type-arg: the handler is generic in the context and root value types, which
# this subclass neither reads nor narrows.
class LimitedTransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws with a readable refusal of one operation too many.

    Strawberry already bounds the operations of a connection
    (``max_subscriptions_per_connection``); its refusal says only "Subscription
    limit reached". This one states the limit and carries a code.
    """

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            limit is not None
            and self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                TOO_MANY_OPERATIONS.format(limit=limit),
                extensions={"code": "TOO_MANY_OPERATIONS"},
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)
