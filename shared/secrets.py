"""Job secrets at rest: encrypted with TICKWORK_SECRET_KEY, readable only here.

A job's signing secrets and its secret headers (``Authorization``, ``Cookie``,
API keys, headers marked secret, credentials taken out of a URL) are stored as
Fernet tokens (AES-128-CBC with HMAC-SHA256, from ``cryptography``) in
``jobs.signing_secrets`` and ``jobs.secret_headers``. The API writes them and
never reads them back out; the daemon opens them to send a request.

TICKWORK_SECRET_KEY holds one or more Fernet keys (32 random bytes, url-safe
base64), separated by commas: the first encrypts, every one decrypts, so a new
key can be put in front while tokens written under the old one still open.

In production a process refuses to start without a key. In development without
one, nothing secret can be stored (the API says so), webhooks go unsigned, and
``tickwork up`` makes a key in its data directory so that this rarely happens.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.errors import TickworkError

if TYPE_CHECKING:
    from shared.settings import Settings

logger = logging.getLogger(__name__)

KEY_SETTING = "TICKWORK_SECRET_KEY"
# Where `tickwork up` keeps the key it generated, inside its data directory.
KEY_FILE_NAME = "secret-key"
MAKE_KEY_HINT = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class SecretKeyError(TickworkError):
    """TICKWORK_SECRET_KEY is missing, malformed, or does not open a secret."""


def parse_keys(value: str) -> list[Fernet]:
    """The Fernet keys of a TICKWORK_SECRET_KEY value, first one first.

    Raises SecretKeyError naming which key is malformed, never its text.
    """
    texts = [part.strip() for part in value.replace("\n", ",").split(",")]
    texts = [text for text in texts if text]
    if not texts:
        raise SecretKeyError(f"{KEY_SETTING} is empty; {MAKE_KEY_HINT}")
    keys = []
    for number, text in enumerate(texts, start=1):
        try:
            keys.append(Fernet(text.encode()))
        except ValueError:
            raise SecretKeyError(
                f"{KEY_SETTING}: key {number} of {len(texts)} is not a Fernet key "
                f"(32 bytes in url-safe base64, 44 characters); {MAKE_KEY_HINT}"
            ) from None
    return keys


# Tokens a box keeps opened. A token never changes once written (new secrets
# make a new token), and a daemon opens the same job's token on every run.
OPENED_TOKENS = 4096


class SecretBox:
    """Seals JSON documents into tokens and opens them again."""

    def __init__(self, keys: list[Fernet]) -> None:
        self._fernet = MultiFernet(keys)
        self._decrypt = lru_cache(maxsize=OPENED_TOKENS)(self._fernet.decrypt)

    def seal(self, document: Any) -> bytes:
        """The token of a JSON document, encrypted under the first key."""
        return self._fernet.encrypt(json.dumps(document).encode())

    def open(self, token: bytes) -> Any:
        """The document a token holds.

        Raises SecretKeyError when no key opens it: it was written under a key
        that is no longer in TICKWORK_SECRET_KEY, or the column was tampered with.
        """
        try:
            return json.loads(self._decrypt(bytes(token)))
        except InvalidToken:
            raise SecretKeyError(
                f"stored secrets cannot be decrypted with {KEY_SETTING}: they "
                "were written under a key it does not list"
            ) from None

    def reseal(self, token: bytes) -> bytes:
        """The same document encrypted under the first key (after a rotation)."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise SecretKeyError(
                f"stored secrets cannot be decrypted with {KEY_SETTING}"
            ) from None


def secret_box(settings: Settings) -> SecretBox | None:
    """The box of the settings' key, or None when no key is set."""
    if settings.secret_key is None:
        return None
    return _box(settings.secret_key.get_secret_value())


@lru_cache(maxsize=4)
def _box(value: str) -> SecretBox:
    return SecretBox(parse_keys(value))


def require_box(settings: Settings) -> SecretBox:
    """The settings' box; SecretKeyError saying how to set a key when none is."""
    box = secret_box(settings)
    if box is None:
        raise SecretKeyError(f"{KEY_SETTING} is not set, so secrets cannot be stored")
    return box


def check_key_for_startup(settings: Settings) -> None:
    """Refuse to start in production without a key; warn in development.

    Raises SecretKeyError with a message meant for the operator.
    """
    if settings.secret_key is not None:
        secret_box(settings)  # a malformed key fails here, not at first use
        return
    if not settings.development:
        raise SecretKeyError(
            f"{KEY_SETTING} must be set in production: it encrypts job secrets "
            "and signing keys. Give every process of one deployment the same "
            f"key (tickwork up keeps its own in .tickwork/{KEY_FILE_NAME}); for "
            f"a new deployment, {MAKE_KEY_HINT}"
        )
    logger.warning(
        "%s is not set: webhooks go unsigned and no secret header can be stored",
        KEY_SETTING,
    )


def key_from_file(data_dir: Path) -> str:
    """The key `tickwork up` keeps in ``data_dir``, made on first use.

    The file is created readable by its owner only, and reused ever after: a
    new key would leave every stored secret unreadable.
    """
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    logger.info("generated a secret key: path=%s", path)
    return key


def seal_headers(box: SecretBox, headers: dict[str, str]) -> bytes | None:
    """The ``jobs.secret_headers`` token of secret headers; None for none."""
    return box.seal({"headers": headers}) if headers else None


def open_headers(box: SecretBox | None, token: bytes | None) -> dict[str, str]:
    """The secret headers a ``jobs.secret_headers`` token holds.

    Raises SecretKeyError when there is a token but no key, or the key does not
    open it.
    """
    if token is None:
        return {}
    if box is None:
        raise SecretKeyError(f"{KEY_SETTING} is not set, so secrets cannot be read")
    return dict(box.open(token)["headers"])


def seal_signing(box: SecretBox, secrets: list[str]) -> bytes:
    """The ``jobs.signing_secrets`` token: the current secret first, then the
    previous one while it is still honoured."""
    return box.seal({"signing": secrets})


def open_signing(box: SecretBox | None, token: bytes | None) -> list[str]:
    """The signing secrets a ``jobs.signing_secrets`` token holds, current first.

    Raises SecretKeyError like :func:`open_headers`.
    """
    if token is None:
        return []
    if box is None:
        raise SecretKeyError(f"{KEY_SETTING} is not set, so secrets cannot be read")
    return list(box.open(token)["signing"])


# Every job's secrets, locked while they are written again under the first key.
LOCK_SEALED_JOBS = """
SELECT id, secret_headers, signing_secrets, client_key FROM jobs
WHERE secret_headers IS NOT NULL OR signing_secrets IS NOT NULL
    OR client_key IS NOT NULL
ORDER BY id
FOR UPDATE
"""


def reseal_jobs(database_url: str, box: SecretBox) -> int:
    """Encrypt every job's secrets again under the first key; returns how many
    jobs were written. One transaction: a key that opens none of them changes
    nothing and raises SecretKeyError.

    After it, the keys behind the first can leave TICKWORK_SECRET_KEY.
    """
    import psycopg

    from shared.db import libpq_url

    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(LOCK_SEALED_JOBS).fetchall()
        for job_id, headers, signing, client_key in rows:
            conn.execute(
                "UPDATE jobs SET secret_headers = %s, signing_secrets = %s, "
                "client_key = %s WHERE id = %s",
                (
                    box.reseal(headers) if headers is not None else None,
                    box.reseal(signing) if signing is not None else None,
                    box.reseal(client_key) if client_key is not None else None,
                    job_id,
                ),
            )
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.secrets reseal``: after putting a new key first in
    TICKWORK_SECRET_KEY, rewrite every job's secrets under it."""
    import sys

    from shared.settings import SettingsError, get_settings

    args = sys.argv[1:] if argv is None else argv
    if args != ["reseal"]:
        print("usage: python -m shared.secrets reseal", file=sys.stderr)
        return 2
    try:
        settings = get_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"reseal: {problem}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("reseal: set TICKWORK_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        count = reseal_jobs(settings.database_url, require_box(settings))
    except SecretKeyError as exc:
        print(f"reseal: {exc}; nothing was changed", file=sys.stderr)
        return 1
    print(f"resealed the secrets of {count} jobs under the first key")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
