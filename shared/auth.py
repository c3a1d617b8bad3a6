"""API tokens (how they look, how they are stored, `tickwork token`), and the
one place the API may run without them.

A token is ``tw_`` followed by 40 URL-safe random characters (240 bits), shown
once when it is created. The database keeps only its SHA-256: a token that
random cannot be guessed from its hash, so no slow password hash is needed, and
a request's token is found by one indexed lookup.

The functions here are what the CLI runs (synchronously, over psycopg); the
API reads the same table in ``api/auth.py``.
"""

from __future__ import annotations

import getpass
import hashlib
import ipaddress
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared.db import libpq_url
from shared.errors import TickworkError
from shared.models import TokenScope
from shared.settings import AuthMode, Settings

TOKEN_PREFIX = "tw_"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_COLUMNS = "id, name, scope, created_at, last_used_at, revoked_at"


class AuthSettingsError(TickworkError):
    """Settings that would run the API without authentication where it is unsafe."""


class TokenError(TickworkError):
    """A token operation that cannot be done, with the reason."""


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a stored token; never the token itself."""

    id: uuid.UUID
    name: str
    scope: TokenScope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_token() -> str:
    """A fresh random token: ``tw_`` and 40 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(30)


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``: what the database stores and looks up."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) is on this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_is_open(settings: Settings) -> bool:
    """Whether the API runs without authentication, or an error if it must not.

    ``TICKWORK_AUTH=off`` is what ``tickwork up`` sets on a loopback address.
    Anywhere else it is refused, so that a copied development setting cannot
    open a production API: it also needs ``TICKWORK_ENV=development``.
    """
    if settings.auth is AuthMode.ON:
        return False
    if not is_loopback_host(settings.host):
        raise AuthSettingsError(
            f"TICKWORK_AUTH=off is refused with TICKWORK_HOST={settings.host}: "
            "without authentication the API may listen only on a loopback "
            "address (127.0.0.1, ::1 or localhost). Unset TICKWORK_AUTH and "
            "use tokens (`tickwork token create`)."
        )
    if not settings.development:
        raise AuthSettingsError(
            "TICKWORK_AUTH=off is refused in production: it is for `tickwork up` "
            "on one machine (TICKWORK_ENV=development). Unset TICKWORK_AUTH and "
            "use tokens (`tickwork token create`)."
        )
    return True


def check_name(name: str) -> str:
    """``name`` if it can name a token, else a TokenError saying what is wrong."""
    if not NAME_PATTERN.fullmatch(name):
        raise TokenError(
            f"token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_token(
    database_url: str, name: str, scope: TokenScope
) -> tuple[TokenInfo, str]:
    """Store a new token's hash and return the token, which is not kept anywhere.

    The creation is audited in the same transaction.
    """
    check_name(name)
    token = new_token()
    with _connect(database_url) as connection:
        with connection.transaction():
            if _live_token_named(connection, name) is not None:
                raise TokenError(
                    f"a token named {name!r} exists; revoke it or choose another name"
                )
            row = connection.execute(
                f"INSERT INTO api_tokens (id, name, token_hash, scope)"
                f" VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                (uuid.uuid4(), name, hash_token(token), scope.value),
            ).fetchone()
            info = _info(row)
            _audit(connection, "createToken", info)
    return info, token


def list_tokens(database_url: str) -> list[TokenInfo]:
    """Every token, live and revoked, oldest first."""
    with _connect(database_url) as connection:
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, name"
        ).fetchall()
    return [_info(row) for row in rows]


def revoke_token(database_url: str, name_or_id: str) -> tuple[TokenInfo, bool]:
    """Revoke the live token with this name, or the token with this id.

    Returns the token and whether this call revoked it (False: it already was).
    A revocation is audited in the same transaction; it takes effect at the
    next request, in every API process.
    """
    with _connect(database_url) as connection:
        with connection.transaction():
            row = _find(connection, name_or_id)
            if row is None:
                raise TokenError(
                    f"no token named {name_or_id!r} (see `tickwork token list`)"
                )
            if row["revoked_at"] is not None:
                return _info(row), False
            row = connection.execute(
                f"UPDATE api_tokens SET revoked_at = tickwork_now()"
                f" WHERE id = %s RETURNING {_COLUMNS}",
                (row["id"],),
            ).fetchone()
            info = _info(row)
            _audit(connection, "revokeToken", info)
    return info, True


def _find(connection: psycopg.Connection, name_or_id: str) -> dict[str, Any] | None:
    try:
        token_id = uuid.UUID(name_or_id)
    except ValueError:
        return _live_token_named(connection, name_or_id)
    return connection.execute(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE id = %s FOR UPDATE", (token_id,)
    ).fetchone()


def _live_token_named(
    connection: psycopg.Connection, name: str
) -> dict[str, Any] | None:
    return connection.execute(
        f"SELECT {_COLUMNS} FROM api_tokens"
        " WHERE name = %s AND revoked_at IS NULL FOR UPDATE",
        (name,),
    ).fetchone()


def _audit(connection: psycopg.Connection, action: str, info: TokenInfo) -> None:
    detail: dict[str, Any] = {
        "token_id": str(info.id),
        "name": info.name,
        "scope": info.scope.value,
    }
    try:
        detail["os_user"] = getpass.getuser()
    except (KeyError, OSError):
        pass  # a container user without a passwd entry
    connection.execute(
        "INSERT INTO audit_events (id, actor_kind, actor, token_id, action, detail)"
        " VALUES (%s, 'cli', 'cli', %s, %s, %s)",
        (uuid.uuid4(), info.id, action, Jsonb(detail)),
    )


def _connect(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(
        libpq_url(database_url), row_factory=dict_row, connect_timeout=10
    )


def _info(row: dict[str, Any] | None) -> TokenInfo:
    if row is None:
        raise TokenError("the token row vanished while it was being changed")
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        scope=TokenScope(row["scope"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
