"""Process settings, read from ``TICKWORK_*`` environment variables."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.actions import validate_url
from shared.egress import EgressPolicy, ip_literal, parse_rules
from shared.errors import InvalidInputError, TickworkError
from shared.secrets import SecretKeyError, parse_keys

# A bootstrap token is a password that never expires: refuse short ones.
MIN_BOOTSTRAP_TOKEN_LENGTH = 32


class SettingsError(TickworkError):
    """Environment variables that do not make valid settings.

    ``problems`` holds one line per bad variable, naming it as it is set
    (``TICKWORK_PORT: ...``) rather than as the field it fills.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class AuthMode(StrEnum):
    ON = "on"
    # Only `tickwork up` on a loopback address may run without authentication;
    # the API refuses to start with it anywhere else (api/auth.py).
    OFF = "off"


class Settings(BaseSettings):
    """Every setting of both processes, read from ``TICKWORK_<NAME>``."""

    # Errors never repeat a value: it may be a key or a secret.
    model_config = SettingsConfigDict(
        env_prefix="TICKWORK_", extra="ignore", hide_input_in_errors=True
    )

    env: Environment = Field(
        Environment.PRODUCTION,
        description="development turns on GraphiQL, introspection and unmasked errors.",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL. Unset: `tickwork up` starts an embedded server.",
    )
    data_dir: Path = Field(
        Path(".tickwork"),
        description="Where `tickwork up` keeps its embedded PostgreSQL cluster.",
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, description="Port the API listens on.")
    web_dir: Path | None = Field(
        None,
        description="The built web page (web/dist). Default: web/dist beside the "
        "api package, which fits a source checkout.",
    )
    quote_url: str | None = Field(
        None,
        description="Quote source for fetch jobs without a URL. "
        "Default: the API's built-in /quote on 127.0.0.1:<port>.",
    )

    # Authentication (api/auth.py).
    auth: AuthMode = Field(
        AuthMode.ON,
        description="on: every GraphQL call needs a token. off: callers on this "
        "machine need none; set only by `tickwork up` on a loopback address.",
    )
    bootstrap_token: SecretStr | None = Field(
        None,
        description="A write token taken from the environment instead of the "
        f"database, at least {MIN_BOOTSTRAP_TOKEN_LENGTH} characters. Default: none.",
    )

    # Daemon.
    concurrency: int = Field(64, ge=1, description="Runs in flight per daemon.")
    claim_batch: int = Field(100, ge=1, le=200, description="Runs claimed per query.")
    lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a claim stays valid without renewal; another daemon "
        "takes a run over this long after its daemon stopped renewing.",
    )
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a daemon renews its leases and heartbeat."
    )
    poll_seconds: float = Field(
        30.0,
        gt=0,
        description="Fallback poll for lost notifications; normal wake-ups come "
        "from LISTEN/NOTIFY and the next due time.",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM, how long in-flight runs may finish before the "
        "rest are handed back.",
    )
    retry_base_seconds: float = Field(
        2.0, gt=0, description="First retry delay; doubles per failure, with jitter."
    )
    retry_max_seconds: float = Field(300.0, gt=0, description="Cap on a retry delay.")
    per_host_concurrency: int = Field(
        16,
        ge=1,
        description="Runs in flight to one host (scheme, host and port) at a "
        "time, so that one slow host cannot take every slot.",
    )
    http_transport: str = Field(
        "aiohttp", description="HTTP transport for runs: aiohttp or httpx."
    )
    retention_days: float = Field(
        30.0,
        ge=0,
        description="Days a finished execution is kept, by when it finished "
        "(default 30); 0 keeps them forever. A job's keepExecutions replaces it.",
    )
    prune_seconds: float = Field(
        300.0,
        gt=0,
        description="Seconds between a daemon's passes deleting executions past "
        "their retention (default 300).",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port a daemon serves Prometheus metrics on, at TICKWORK_HOST "
        "(default: none, not served). Daemons on one host each need their own "
        "port; 0 takes a free one and logs it.",
    )

    # Alerts (daemon/alerts.py).
    alert_url: str | None = Field(
        None,
        description="Where alerts go (failed executions, auto-paused jobs, "
        "missed fire times) for jobs without an alertUrl of their own "
        "(default: none; such jobs send no alerts).",
    )
    alert_secret: SecretStr | None = Field(
        None,
        description="Key that signs alerts (Standard Webhooks, HMAC-SHA256); a "
        "whsec_ prefix means base64 after it. Default: none, alerts go unsigned.",
    )
    alert_poll_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds between a daemon's looks for alerts to send (default 5).",
    )

    # Egress: what runs may reach (shared/egress.py).
    allow_private_targets: bool = Field(
        False,
        description="Let runs reach loopback, RFC 1918, CGNAT and unique local "
        "addresses (default false). Link-local and metadata addresses stay refused.",
    )
    egress_allow: str | None = Field(
        None,
        description="Comma-separated host names (.example.com for a domain) and "
        "CIDRs; when set, runs reach only these (default: none, no such limit).",
    )
    egress_deny: str | None = Field(
        None,
        description="Comma-separated host names and CIDRs runs never reach; wins "
        "over TICKWORK_EGRESS_ALLOW (default: none).",
    )
    dns_servers: str | None = Field(
        None,
        description="Comma-separated DNS servers (ip or ip:port) the daemon asks "
        "for run targets (default: none, the system resolver).",
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the certificate authorities runs trust, instead "
        "of the bundled ones (default: none, certifi's bundle).",
    )
    client_cert: Path | None = Field(
        None,
        description="PEM client certificate runs present when a server asks "
        "(default: none). TICKWORK_CLIENT_KEY holds its key, unless it is in here.",
    )
    client_key: Path | None = Field(
        None, description="PEM key of TICKWORK_CLIENT_CERT (default: none)."
    )
    proxy_url: str | None = Field(
        None,
        description="HTTP proxy every run goes through, http://host:port "
        "(default: none). Targets are still checked, resolved by the daemon.",
    )

    # Secrets (shared/secrets.py).
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet keys that encrypt job secrets at rest, comma-separated: "
        "the first encrypts, all decrypt. Required in production; `tickwork up` "
        "makes one in its data directory. Unset in development: no secrets.",
    )

    @field_validator("alert_url")
    @classmethod
    def _check_alert_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return validate_url(value, "TICKWORK_ALERT_URL")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("egress_allow", "egress_deny")
    @classmethod
    def _check_egress_rules(cls, value: str | None, info: ValidationInfo) -> str | None:
        parse_rules(value, f"TICKWORK_{(info.field_name or '').upper()}")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _check_dns_servers(cls, value: str | None) -> str | None:
        for server in (value or "").split(","):
            server = server.strip()
            host, _, port = server.rpartition(":")
            if not server or ip_literal(server) is not None:
                continue
            if not (port.isdigit() and ip_literal(host) is not None):
                raise ValueError(f"{server!r} is not an ip or ip:port")
        return value or None

    @field_validator("ca_bundle", "client_cert", "client_key")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("proxy_url")
    @classmethod
    def _check_proxy_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return validate_url(value, "TICKWORK_PROXY_URL")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("bootstrap_token")
    @classmethod
    def _check_bootstrap_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        token = value.get_secret_value()
        if len(token) < MIN_BOOTSTRAP_TOKEN_LENGTH or token != token.strip():
            raise ValueError(
                f"must be at least {MIN_BOOTSTRAP_TOKEN_LENGTH} characters, "
                "without surrounding spaces (`openssl rand -hex 32` makes one)"
            )
        return value

    @field_validator("alert_secret")
    @classmethod
    def _check_alert_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret.startswith("whsec_"):
            try:
                base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                raise ValueError(
                    "a whsec_ secret must be base64 after whsec_"
                ) from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parse_keys(value.get_secret_value())
        except SecretKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    def egress_policy(self) -> EgressPolicy:
        """What runs may reach, from the egress settings."""
        return EgressPolicy(
            allow_private=self.allow_private_targets,
            allow=parse_rules(self.egress_allow, "TICKWORK_EGRESS_ALLOW"),
            deny=parse_rules(self.egress_deny, "TICKWORK_EGRESS_DENY"),
        )

    def nameservers(self) -> list[str]:
        """TICKWORK_DNS_SERVERS as a list (empty: the system resolver)."""
        return [s.strip() for s in (self.dns_servers or "").split(",") if s.strip()]

    def resolved_quote_url(self) -> str:
        return self.quote_url or f"http://127.0.0.1:{self.port}/quote"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Raises SettingsError, naming each bad variable, if they are not valid.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(settings_problems(exc)) from exc


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per error of ``exc``: the environment variable and what is wrong.

    The value itself is left out, as it may be a key or a token.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        # A validator's own ValueError reads better without pydantic's
        # "Value error, " in front of it.
        cause = (error.get("ctx") or {}).get("error")
        message = str(cause) if isinstance(cause, ValueError) else error["msg"]
        if field:
            message = f"TICKWORK_{field.upper()}: {message}"
        problems.append(message)
    return problems
