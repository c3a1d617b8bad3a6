"""What a run does: POST a webhook, or fetch a URL and keep its JSON."""

from __future__ import annotations

import base64
import re
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field

from shared.egress import EgressPolicy, EgressRefused, ip_literal, legacy_ipv4
from shared.errors import FieldError, InvalidInputError

ActionKind = Literal["webhook", "fetch"]

# The original REST design put the target in the payload under one of these keys.
LEGACY_URL_KEYS = ("webhook_url", "callback_url")

MAX_URL_LENGTH = 2048
# Bounds on a job's headers, well inside what servers accept (8 KiB a line is
# common), so that a job cannot build a request every target refuses.
MAX_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
# RFC 9110 token characters: all a header name may hold.
HEADER_NAME_CHARACTERS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

# Headers that frame or route the request, or that Tickwork sets itself: a job
# setting them would corrupt the request or impersonate another host.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "content-type",
        "idempotency-key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)

# Headers that carry credentials by name, and words that mark one (X-Api-Key,
# X-Auth-Token, X-Hub-Signature): they are kept encrypted and never shown, as
# if the job had marked them secret.
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "apikey", "api-key"})
SENSITIVE_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "token",
        "secret",
        "key",
        "apikey",
        "password",
        "passwd",
        "session",
        "cookie",
        "signature",
        "credential",
        "credentials",
    }
)


class Action(BaseModel):
    """A validated action, as stored in ``jobs.action``.

    A fetch without a URL fetches a quote from the configured quote source.
    """

    model_config = ConfigDict(frozen=True)

    kind: ActionKind
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    follow_redirects: bool = False
    # PEM certificates this webhook's server is verified against, instead of
    # the daemon's trusted authorities.
    ca_bundle: str | None = None
    # The PEM client certificate this webhook presents, instead of the daemon's;
    # its private key lives encrypted in ``jobs.client_key``.
    client_certificate: str | None = None
    # The key given with this input: never stored in ``jobs.action``. None with
    # a certificate keeps the key the job has.
    client_key: str | None = Field(default=None, exclude=True, repr=False)
    # The names of the secret headers; their values live encrypted in
    # ``jobs.secret_headers``.
    secret_headers: list[str] = Field(default_factory=list)
    # The secret values given with this input, by name: never stored in
    # ``jobs.action``. A name in ``secret_headers`` without a value here keeps
    # the value the job has.
    secrets: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @property
    def kept_secrets(self) -> list[str]:
        """The secret headers whose stored value this input keeps."""
        return [name for name in self.secret_headers if name not in self.secrets]


def is_sensitive_header(name: str) -> bool:
    """Whether a header name says it carries a credential."""
    lowered = name.lower()
    words = re.split(r"[-_.]", lowered)
    return lowered in SENSITIVE_HEADERS or any(w in SENSITIVE_WORDS for w in words)


def split_sensitive(headers: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Headers as (plain, sensitive by name)."""
    plain = {k: v for k, v in headers.items() if not is_sensitive_header(k)}
    sensitive = {k: v for k, v in headers.items() if is_sensitive_header(k)}
    return plain, sensitive


def build_action(
    *,
    webhook: dict[str, Any] | None,
    fetch: dict[str, Any] | None,
    payload: Any = None,
    field: str = "action",
) -> Action:
    """Validate user input into an :class:`Action`, or raise InvalidInputError.

    With neither ``webhook`` nor ``fetch``, a payload holding ``webhook_url`` or
    ``callback_url`` makes a webhook to that URL.

    Secrets are set apart in ``Action.secrets``: the webhook's
    ``secret_headers`` (a null value keeps the job's stored one), headers whose
    name says they carry a credential, and ``user:password@`` in a URL, which
    becomes the Basic ``Authorization`` header it would be sent as anyway.
    """
    if webhook is None and fetch is None and isinstance(payload, dict):
        for key in LEGACY_URL_KEYS:
            if isinstance(payload.get(key), str):
                webhook = {"url": payload[key]}
                field = f"payload.{key}"
                break
        else:
            raise InvalidInputError.single(field, "give webhook or fetch")
    if (webhook is None) == (fetch is None):
        raise InvalidInputError.single(field, "give exactly one of webhook or fetch")

    if webhook is not None:
        url_field = field if field.startswith("payload.") else f"{field}.webhook.url"
        errors: list[FieldError] = []
        url = _collect(errors, target_url, webhook.get("url"), url_field)
        ca_bundle = _collect(
            errors, _ca_bundle, webhook.get("ca_bundle"), f"{field}.webhook.caBundle"
        )
        certificate, key = _collect_identity(errors, webhook, f"{field}.webhook")
        headers_field = f"{field}.webhook.headers"
        secrets_field = f"{field}.webhook.secretHeaders"
        headers = _collect(errors, _headers, webhook.get("headers"), headers_field)
        marked = _collect(
            errors, _secret_headers, webhook.get("secret_headers"), secrets_field
        )
        if errors:
            raise InvalidInputError(errors)
        plain, sensitive = split_sensitive(headers)
        named = {**sensitive, **marked}
        _check_overlap(sensitive, marked, headers_field, secrets_field)
        url, credentials = _take_credentials(url, named, url_field)
        named.update(credentials)
        return Action(
            kind="webhook",
            url=url,
            headers=plain,
            verify_tls=webhook.get("verify_tls", True) is not False,
            follow_redirects=bool(webhook.get("follow_redirects", False)),
            ca_bundle=ca_bundle,
            client_certificate=certificate,
            client_key=key,
            secret_headers=sorted(named, key=str.lower),
            secrets={k: v for k, v in named.items() if v is not None},
        )

    raw_url = (fetch or {}).get("url")
    url = None
    credentials: dict[str, str] = {}
    if raw_url is not None and raw_url.strip():
        url_field = f"{field}.fetch.url"
        url, credentials = _take_credentials(
            target_url(raw_url, url_field), {}, url_field
        )
    return Action(
        kind="fetch", url=url, secret_headers=sorted(credentials), secrets=credentials
    )


def validate_url(value: Any, field: str) -> str:
    """A trimmed absolute http(s) URL, or InvalidInputError naming ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError.single(field, "a URL is required")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInputError.single(
            field, f"is {len(url)} characters long; the limit is {MAX_URL_LENGTH}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidInputError.single(field, f"malformed URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError.single(field, "must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidInputError.single(field, "must name a host")
    if any(ch.isspace() for ch in url):
        raise InvalidInputError.single(field, "must not contain spaces")
    return url


def _collect(errors: list[FieldError], check: Any, value: Any, field: str) -> Any:
    """Run one check, adding its errors to ``errors`` instead of stopping."""
    try:
        return check(value, field)
    except InvalidInputError as exc:
        errors.extend(exc.errors)
        return None


def _headers(value: Any, field: str, *, keeping: bool = False) -> dict[str, str | None]:
    """Checked headers; with ``keeping``, a null value is allowed (kept)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError.single(field, "must be an object of header: value")
    if len(value) > MAX_HEADERS:
        raise InvalidInputError.single(
            field, f"has {len(value)} headers; the limit is {MAX_HEADERS}"
        )
    errors = []
    for name, header_value in value.items():
        if len(name) > MAX_HEADER_NAME_LENGTH:
            errors.append(
                FieldError(
                    field,
                    f"a header name is {len(name)} characters long; "
                    f"the limit is {MAX_HEADER_NAME_LENGTH}",
                )
            )
        elif not name or not HEADER_NAME_CHARACTERS.issuperset(name):
            errors.append(
                FieldError(
                    f"{field}.{name}",
                    "not a valid header name: letters, digits and !#$%&'*+-.^_`|~ only",
                )
            )
        elif name.lower() in RESERVED_HEADERS:
            errors.append(
                FieldError(f"{field}.{name}", "is set by Tickwork and cannot be given")
            )
        elif header_value is None and keeping:
            continue
        elif not isinstance(header_value, str) or any(
            ch in header_value for ch in "\r\n\x00"
        ):
            # The message never repeats the value: it may be a secret.
            errors.append(FieldError(f"{field}.{name}", "must be a one-line string"))
        elif len(header_value) > MAX_HEADER_VALUE_LENGTH:
            errors.append(
                FieldError(
                    f"{field}.{name}",
                    f"is {len(header_value)} characters long; "
                    f"the limit is {MAX_HEADER_VALUE_LENGTH}",
                )
            )
        elif not header_value.isascii() or not header_value.isprintable():
            # HTTP clients send header values as ASCII; anything else would
            # fail every delivery instead of this request.
            errors.append(
                FieldError(f"{field}.{name}", "must be printable ASCII characters")
            )
    if errors:
        raise InvalidInputError(errors)
    return dict(value)


def _secret_headers(value: Any, field: str) -> dict[str, str | None]:
    return _headers(value, field, keeping=True)


def _check_overlap(
    sensitive: dict[str, Any], marked: dict[str, Any], headers: str, secrets: str
) -> None:
    """A header given both as a plain and a secret header is ambiguous."""
    marked_names = {name.lower() for name in marked}
    both = [name for name in sensitive if name.lower() in marked_names]
    if both:
        raise InvalidInputError(
            [FieldError(f"{headers}.{name}", f"is also in {secrets}") for name in both]
        )


def _take_credentials(
    url: str, secrets: dict[str, Any], field: str
) -> tuple[str, dict[str, str]]:
    """The URL without ``user:password@``, and the Basic Authorization header
    those credentials make (empty when it has none)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    if any(name.lower() == "authorization" for name in secrets):
        raise InvalidInputError.single(
            field, "holds user:password@ and an Authorization header is given too"
        )
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": basic}


# The largest CA bundle a job may carry: a few intermediate and root
# certificates fit many times over.
MAX_CA_BUNDLE_LENGTH = 64 * 1024


def target_url(value: Any, field: str) -> str:
    """A URL a run or an alert is sent to: valid, and not an address no run may
    ever reach, however it is spelled (the daemon checks again when it
    connects, since names can change)."""
    url = validate_url(value, field)
    host = urlsplit(url).hostname or ""
    address = host if ip_literal(host) is not None else None
    if address is None and (legacy := legacy_ipv4(host)) is not None:
        address = str(legacy)
    if address is not None:
        try:
            EgressPolicy.permissive().check(host, address)
        except EgressRefused as exc:
            raise InvalidInputError.single(field, str(exc)) from None
    return url


def _ca_bundle(value: Any, field: str) -> str | None:
    """PEM certificates to verify the server with, or None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInputError.single(field, "must be PEM text")
    if len(value) > MAX_CA_BUNDLE_LENGTH:
        raise InvalidInputError.single(
            field,
            f"is {len(value)} characters long; the limit is {MAX_CA_BUNDLE_LENGTH}",
        )
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise InvalidInputError.single(
            field, "is not PEM certificates (-----BEGIN CERTIFICATE-----...)"
        ) from None
    if not certificates:
        raise InvalidInputError.single(field, "holds no certificate")
    return value.strip() + "\n"


def _collect_identity(
    errors: list[FieldError], webhook: dict[str, Any], field: str
) -> tuple[str | None, str | None]:
    """The webhook's client certificate and key (PEM), checked to be a pair.

    A key needs its certificate; a certificate without a key is checked by the
    caller against the key the job already has.
    """
    given_certificate = webhook.get("client_certificate")
    given_key = webhook.get("client_key")
    certificate_field = f"{field}.clientCertificate"
    key_field = f"{field}.clientKey"
    certificate = _collect(
        errors, _client_certificate, given_certificate, certificate_field
    )
    if given_key is None or (isinstance(given_key, str) and not given_key.strip()):
        return certificate, None
    if given_certificate is None:
        errors.append(FieldError(key_field, "give clientCertificate with it"))
        return None, None
    if certificate is None:
        return None, None
    try:
        key = serialization.load_pem_private_key(str(given_key).encode(), None)
    except (ValueError, TypeError):
        # The message never repeats the value: it is a secret.
        errors.append(FieldError(key_field, "is not an unencrypted PEM private key"))
        return None, None
    public = x509.load_pem_x509_certificate(certificate.encode()).public_key()
    if _public_bytes(key.public_key()) != _public_bytes(public):
        errors.append(FieldError(key_field, "is not the key of clientCertificate"))
        return None, None
    return certificate, str(given_key).strip() + "\n"


def _client_certificate(value: Any, field: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > MAX_CA_BUNDLE_LENGTH:
        raise InvalidInputError.single(
            field, f"must be PEM text of at most {MAX_CA_BUNDLE_LENGTH} characters"
        )
    try:
        x509.load_pem_x509_certificate(value.encode())
    except ValueError:
        raise InvalidInputError.single(
            field, "is not a PEM certificate (-----BEGIN CERTIFICATE-----...)"
        ) from None
    return value.strip() + "\n"


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
