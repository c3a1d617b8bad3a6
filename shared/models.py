"""The database tables, as SQLModel classes.

The schema itself is created by the Alembic migrations in ``shared/migrations``;
these classes serve the API's CRUD. The daemon's hot path writes SQL directly
(``daemon/queue.py``) against the same tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JobState(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    # A one-off that ran, or a schedule past its end.
    COMPLETED = "COMPLETED"


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    MISSED = "MISSED"
    CANCELLED = "CANCELLED"


FINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.MISSED,
        ExecutionStatus.CANCELLED,
    }
)


class CatchUp(StrEnum):
    """What to run for fire times that every daemon missed."""

    NONE = "NONE"  # nothing; the gap is recorded as MISSED
    LATEST = "LATEST"  # one run, for the most recent missed time
    ALL = "ALL"  # every missed time, up to the job's catch_up_limit


class Overlap(StrEnum):
    """What to do when a fire time comes while an earlier run is not final."""

    FORBID = "FORBID"  # record the new fire time as SKIPPED
    ALLOW = "ALLOW"  # run it too, up to the job's max_in_flight
    REPLACE = "REPLACE"  # cancel the earlier run, then run the new one


class Trigger(StrEnum):
    SCHEDULE = "SCHEDULE"
    MANUAL = "MANUAL"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    # The daemon holding the attempt stopped renewing its lease; another took over.
    ABANDONED = "ABANDONED"
    # The execution was cancelled while this attempt ran.
    CANCELLED = "CANCELLED"


class DaemonState(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    DEAD = "DEAD"


def _enum(enum: type[StrEnum], name: str) -> sa.Enum:
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


def _now_default() -> dict[str, Any]:
    return {"server_default": sa.text("tickwork_now()"), "nullable": False}


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index(
            "ix_jobs_due", "next_run_at", postgresql_where=sa.text("state = 'ACTIVE'")
        ),
        sa.Index("ix_jobs_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        primary_key=True,
    )
    key: str | None = Field(default=None, unique=True, max_length=200)
    name: str = Field(max_length=200)
    schedule: dict[str, Any] = Field(sa_column=sa.Column(JSONB, nullable=False))
    action: dict[str, Any] = Field(sa_column=sa.Column(JSONB, nullable=False))
    payload: Any = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    max_retries: int = Field(default=3, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)
    catch_up: CatchUp = Field(
        default=CatchUp.LATEST,
        sa_column=sa.Column(
            _enum(CatchUp, "catch_up"), nullable=False, server_default="LATEST"
        ),
    )
    catch_up_limit: int = Field(default=10, sa_column_kwargs={"server_default": "10"})
    # A fire time counts as missed once it is this late; before, it just runs late.
    misfire_grace_seconds: int = Field(
        default=60, sa_column_kwargs={"server_default": "60"}
    )
    overlap: Overlap = Field(
        default=Overlap.FORBID,
        sa_column=sa.Column(
            _enum(Overlap, "overlap"), nullable=False, server_default="FORBID"
        ),
    )
    max_in_flight: int = Field(default=5, sa_column_kwargs={"server_default": "5"})
    jitter_seconds: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Per-job retry backoff: seconds before the first retry, and the cap.
    # None: the daemon's TICKWORK_RETRY_BASE_SECONDS / TICKWORK_RETRY_MAX_SECONDS.
    retry_base_seconds: float | None = None
    retry_max_seconds: float | None = None
    # How many finished executions of this job to keep; None: the global rule.
    keep_executions: int | None = None
    # Where this job's alerts go; None: the daemon's TICKWORK_ALERT_URL, if any.
    alert_url: str | None = None
    # Fernet tokens (shared/secrets.py): the secret headers, and the signing
    # secrets, current first. Never sent to a client.
    secret_headers: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True), repr=False
    )
    signing_secrets: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True), repr=False
    )
    # Deliveries are also signed with the previous secret until then.
    signing_previous_until: datetime | None = None
    # Fernet token of the private key of the job's own client certificate
    # (the certificate is in ``action``). Never sent to a client.
    client_key: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True), repr=False
    )
    # Pause the job after this many failed executions in a row; None: never.
    pause_after_failures: int | None = None
    consecutive_failures: int = Field(
        default=0, sa_column_kwargs={"server_default": "0"}
    )
    state: JobState = Field(
        default=JobState.ACTIVE,
        sa_column=sa.Column(_enum(JobState, "job_state"), nullable=False),
    )
    state_reason: str | None = None
    next_run_at: datetime | None = Field(default=None)
    created_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    updated_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())


class Execution(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "scheduled_for"),
        # The claim query reads the first two; the history pages read the third.
        sa.Index(
            "ix_executions_claimable",
            "run_at",
            postgresql_where=sa.text("status IN ('PENDING', 'RETRYING')"),
        ),
        sa.Index(
            "ix_executions_lease",
            "lease_expires_at",
            postgresql_where=sa.text("status = 'RUNNING'"),
        ),
        sa.Index("ix_executions_job_history", "job_id", "created_at", "id"),
        # Retention deletes a job's oldest finished executions first.
        sa.Index(
            "ix_executions_finished",
            "job_id",
            "finished_at",
            postgresql_where=sa.text(
                "status IN ('SUCCEEDED', 'FAILED', 'SKIPPED', 'MISSED', 'CANCELLED')"
            ),
        ),
        # The overlap policy counts a job's unfinished executions.
        sa.Index(
            "ix_executions_unfinished",
            "job_id",
            postgresql_where=sa.text("status IN ('PENDING', 'RUNNING', 'RETRYING')"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    job_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        )
    )
    # The fire time this execution is for; NULL for a manual trigger.
    scheduled_for: datetime | None = None
    trigger: Trigger = Field(
        default=Trigger.SCHEDULE,
        sa_column=sa.Column(_enum(Trigger, "execution_trigger"), nullable=False),
    )
    status: ExecutionStatus = Field(
        default=ExecutionStatus.PENDING,
        sa_column=sa.Column(_enum(ExecutionStatus, "execution_status"), nullable=False),
    )
    # When it may next be claimed: its fire time, or when its next retry is due.
    run_at: datetime
    # How many fire times this execution stands for (a MISSED gap covers many).
    covers: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # Why it was SKIPPED, MISSED or CANCELLED.
    reason: str | None = None
    # Attempts started, takeovers included; `failures` counts against max_retries.
    attempt: int = 0
    failures: int = 0
    # Ownership: bumped by the database on every claim; every write by the
    # holder is conditioned on it.
    fence: int = Field(default=0, sa_type=sa.BigInteger)
    daemon_id: uuid.UUID | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    http_status: int | None = None
    result: Any = Field(default=None, sa_column=sa.Column(JSONB, nullable=True))
    error: str | None = None
    created_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())


class Attempt(SQLModel, table=True):
    """One delivery of an execution, written once when it ends (append-only)."""

    __tablename__ = "attempts"
    __table_args__ = (sa.UniqueConstraint("execution_id", "number"),)

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True),
    )
    execution_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("executions.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    number: int
    daemon_id: uuid.UUID | None = None
    outcome: AttemptOutcome = Field(
        sa_column=sa.Column(_enum(AttemptOutcome, "attempt_outcome"), nullable=False)
    )
    started_at: datetime
    finished_at: datetime
    http_status: int | None = None
    error: str | None = None
    response_excerpt: str | None = None


class AlertKind(StrEnum):
    EXECUTION_FAILED = "EXECUTION_FAILED"
    JOB_PAUSED = "JOB_PAUSED"
    FIRE_TIMES_MISSED = "FIRE_TIMES_MISSED"


class Alert(SQLModel, table=True):
    """One event waiting for, or sent to, an alert URL (a transactional outbox).

    The statement that fails an execution, pauses a job or records missed fire
    times inserts the row, so an alert exists exactly when its cause was
    committed; ``daemon/alerts.py`` sends it. The URL is read from the job
    when the alert is sent, so a corrected URL also serves alerts waiting for
    a retry; that is why the row goes with its job (ON DELETE CASCADE).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('EXECUTION_FAILED', 'JOB_PAUSED', 'FIRE_TIMES_MISSED')",
            name="kind",
        ),
        sa.Index("ix_alerts_job_id", "job_id"),
        # What the sender reads: alerts not yet delivered, by when they are due.
        sa.Index(
            "ix_alerts_due",
            "next_attempt_at",
            postgresql_where=sa.text("delivered_at IS NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True),
    )
    job_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        )
    )
    # No foreign key: retention prunes executions, and their alerts stay.
    execution_id: uuid.UUID | None = None
    kind: AlertKind = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # The JSON body that is sent.
    payload: dict[str, Any] = Field(sa_column=sa.Column(JSONB, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    # Sends started, including one in progress.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # When it may be sent (again); a claim moves it one lease ahead. NULL once
    # delivered or given up.
    next_attempt_at: datetime | None = Field(
        default=None, sa_column_kwargs={"server_default": sa.text("tickwork_now()")}
    )
    delivered_at: datetime | None = None
    last_error: str | None = None


class Daemon(SQLModel, table=True):
    __tablename__ = "daemons"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hostname: str
    pid: int
    concurrency: int
    state: DaemonState = Field(
        default=DaemonState.RUNNING,
        sa_column=sa.Column(_enum(DaemonState, "daemon_state"), nullable=False),
    )
    started_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    heartbeat_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    stopped_at: datetime | None = None


class TokenScope(StrEnum):
    """What an API token may do: READ queries and subscribes; WRITE also mutates."""

    READ = "read"
    WRITE = "write"


class ApiToken(SQLModel, table=True):
    """An API token. Only the SHA-256 of the token is stored, never the token.

    A revoked token keeps its row (``revoked_at`` set), so the audit trail can
    still name it; a new token may then take its name.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        sa.CheckConstraint("scope IN ('read', 'write')", name="scope"),
        sa.Index(
            "ix_api_tokens_live_name",
            "name",
            unique=True,
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    # Hex SHA-256 of the whole token; what a request's token is looked up by.
    token_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    scope: TokenScope = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    # Recorded at most about once a minute per API process, not per request.
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """Who changed what: one row per change made through the API or the CLI.

    No foreign keys: the trail outlives the jobs it names and the tokens that
    acted.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.CheckConstraint(
            "actor_kind IN ('token', 'bootstrap', 'open', 'cli')", name="actor_kind"
        ),
        sa.Index("ix_audit_events_page", "created_at", "id"),
        sa.Index("ix_audit_events_job_page", "job_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime | None = Field(default=None, sa_column_kwargs=_now_default())
    # token: a stored token; bootstrap: TICKWORK_BOOTSTRAP_TOKEN; open: a caller
    # of `tickwork up` without authentication; cli: the `tickwork` command.
    actor_kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # The token's name, or the kind itself for the others.
    actor: str
    token_id: uuid.UUID | None = None
    # The mutation's name, such as pauseJob, or createToken / revokeToken.
    action: str
    job_id: uuid.UUID | None = None
    detail: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
