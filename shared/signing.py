"""Signing outgoing requests as the Standard Webhooks specification describes.

A signed request carries three headers: ``webhook-id`` (the same on every
attempt of one message, so a receiver can drop duplicates), ``webhook-timestamp``
(Unix seconds when it was sent, so a receiver can refuse replays) and
``webhook-signature``: ``v1,`` followed by the base64 HMAC-SHA256 of
``<webhook-id>.<webhook-timestamp>.<body>``, one such value per key,
space-separated. Sending two during a rotation lets a receiver that knows
either secret verify the request.

Secrets are written ``whsec_`` followed by the base64 of the key bytes, the form
receivers' libraries take as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
# Key bytes of a generated secret; the specification asks for 24 to 64.
GENERATED_KEY_BYTES = 32
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


class InvalidSecretError(ValueError):
    """A signing secret that is not ``whsec_`` and base64 of a usable key."""


def new_secret() -> str:
    """A fresh random signing secret in the ``whsec_<base64>`` form."""
    key = secrets.token_bytes(GENERATED_KEY_BYTES)
    return PREFIX + base64.b64encode(key).decode()


def check_secret(secret: str) -> str:
    """``secret`` when it is a ``whsec_`` secret of 24 to 64 key bytes.

    Raises InvalidSecretError saying what is wrong, without repeating the value.
    """
    if not secret.startswith(PREFIX):
        raise InvalidSecretError(f"must start with {PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise InvalidSecretError(f"must be base64 after {PREFIX}") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidSecretError(
            f"must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes of key after "
            f"{PREFIX}; it holds {len(key)}"
        )
    return secret


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after ``whsec_``, else its UTF-8.

    The plain-text form serves TICKWORK_ALERT_SECRET, which predates the
    ``whsec_`` convention. Raises ValueError when the base64 is not valid.
    """
    if secret.startswith(PREFIX):
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    return secret.encode()


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a message under one key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of a message.

    ``webhook-signature`` holds one signature per key, in the order given
    (the current key first during a rotation); with no key it is left out and
    the message goes unsigned, with its id and timestamp still set.
    """
    headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if keys:
        headers["webhook-signature"] = " ".join(
            signature(key, message_id, timestamp, body) for key in keys
        )
    return headers
