"""`python -m api`: serve the API on TICKWORK_HOST:TICKWORK_PORT until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from api.app import create_app
from api.limits import MAX_BODY_BYTES
from shared.auth import AuthSettingsError
from shared.logs import configure_logging
from shared.secrets import SecretKeyError, check_key_for_startup
from shared.settings import SettingsError, get_settings


def main() -> int:
    try:
        configure_logging()
    except ValueError as exc:
        print(f"tickwork api: {exc}", file=sys.stderr)
        return 2
    try:
        settings = get_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"tickwork api: {problem}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("tickwork api: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        check_key_for_startup(settings)
    except SecretKeyError as exc:
        print(f"tickwork api: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except AuthSettingsError as exc:
        print(f"tickwork api: {exc}", file=sys.stderr)
        return 2
    # uvicorn handles SIGTERM and SIGINT: it stops accepting, lets requests
    # finish, closes WebSockets and then runs the app's shutdown.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        # A WebSocket message carries one operation, like an HTTP body.
        ws_max_size=MAX_BODY_BYTES,
        # Live updates are small JSON messages sent to every subscriber:
        # compressing each one for each subscriber cost more CPU than it saved
        # (fan-out to 1,000 subscribers: 194 ms to the last one with it, 177
        # without).
        ws_per_message_deflate=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
