"""The FastAPI application: /graphql, health checks, /metrics, /quote and the page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError

from api import session
from api.auth import (
    Authenticator,
    AuthRefused,
    LoopbackHostOnly,
    auth_is_open,
    refused_response,
)
from api.broadcaster import Broadcaster
from api.context import ApiState
from api.limits import MAX_BODY_BYTES, BodyLimit
from api.quotes import random_quote
from api.router import create_router
from shared.db import create_engine, session_factory
from shared.metrics import ApiMetrics, RequestMetricsMiddleware
from shared.schema_version import check_schema
from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
READY_TIMEOUT_SECONDS = 2.0

NO_WEB_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tickwork</title></head>
<body><h1>Tickwork</h1>
<p>The web page is not built. Run <code>make run</code>, which builds it, or
<code>cd web &amp;&amp; npm ci &amp;&amp; node build.mjs</code>.</p>
<p>The GraphQL API is at <a href="/graphql">/graphql</a>.</p></body></html>
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application; the database is reached only once it starts."""
    settings = settings or get_settings()
    if not settings.database_url:
        raise ValueError("TICKWORK_DATABASE_URL is not set")
    database_url = settings.database_url
    # Refuses TICKWORK_AUTH=off where it is unsafe, before anything starts.
    is_open = auth_is_open(settings)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await check_schema(database_url)
        except (psycopg.OperationalError, OSError) as exc:
            # Unreachable is not wrong: /readyz says so until the database is
            # back. A schema this code cannot serve stops the start instead.
            logger.warning("schema not checked, database unavailable: %s", exc)
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        broadcaster = Broadcaster(database_url, sessions)
        metrics.count_subscribers(lambda: broadcaster.subscriber_count)
        auth = Authenticator(settings, sessions)
        app.state.tickwork = ApiState(settings, engine, sessions, broadcaster, auth)
        await auth.log_start()
        broadcaster.start()
        try:
            yield
        finally:
            # Stop the listener first: it reads through the engine's pool.
            await broadcaster.stop()
            await engine.dispose()

    app = FastAPI(
        title="Tickwork",
        lifespan=lifespan,
        docs_url="/docs" if settings.development else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.development else None,
    )
    app.state.metrics = metrics
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimit, path="/graphql", max_bytes=MAX_BODY_BYTES)
    if is_open:
        # Added last, so it runs first: a request for another host name is
        # refused before anything else reads it.
        app.add_middleware(LoopbackHostOnly)
    app.include_router(create_router(development=settings.development))
    app.include_router(session.router)
    # Requests to /graphql refused before GraphQL runs: no or bad credentials.
    app.add_exception_handler(AuthRefused, refused_response)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    app.add_api_route("/quote", quote, methods=["GET"])
    app.add_api_route(
        "/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False
    )

    # Mounted last, so that every route above wins over a file of the same name.
    web_dist = settings.web_dir or WEB_DIST
    if web_dist.is_dir():
        app.mount("/", StaticFiles(directory=web_dist, html=True), name="web")
    else:
        app.add_api_route("/", no_web_page, methods=["GET"], include_in_schema=False)
    return app


async def healthz() -> dict[str, str]:
    """The process is up; says nothing about the database."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers a query within READY_TIMEOUT_SECONDS."""
    state: ApiState = request.app.state.tickwork
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with state.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
    except (TimeoutError, SQLAlchemyError, OSError) as exc:
        logger.warning("not ready: database unavailable: %s", exc)
        return JSONResponse(
            {"status": "unavailable", "reason": "database unavailable"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


async def quote() -> dict[str, str]:
    """A random quote: what a fetch job without a URL fetches."""
    return dict(random_quote())


async def no_web_page() -> HTMLResponse:
    return HTMLResponse(NO_WEB_PAGE)
