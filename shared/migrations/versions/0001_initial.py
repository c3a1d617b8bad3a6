"""Jobs, executions, attempts and daemons; the database clock; execution events."""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every due-ness and lease decision reads this one clock. Tests shift it with
# `SET tickwork.clock_offset = '1 hour'` (or ALTER DATABASE ... SET).
CLOCK = """
CREATE FUNCTION tickwork_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT now() + coalesce(
        nullif(current_setting('tickwork.clock_offset', true), ''), '0'
    )::interval
$$
"""

# Announces executions whose status changed, to every API process's LISTEN.
# Each writer calls it once per transaction with every id it changed; payloads
# carry ids only (listeners re-read the rows) and stay far below PostgreSQL's
# 8,000-byte limit: one NOTIFY for up to 200 ids, which every batch fits.
EXECUTION_EVENTS = """
CREATE FUNCTION tickwork_notify_executions(ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    i int := 1;
BEGIN
    WHILE ids IS NOT NULL AND i <= cardinality(ids) LOOP
        PERFORM pg_notify(
            'tickwork_executions', array_to_string(ids[i:i + 199], ',')
        );
        i := i + 200;
    END LOOP;
END
$$
"""


def _utc() -> sa.types.TypeEngine:
    return sqlmodel.sql.sqltypes.UTCDateTime()


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(
        *values, name=name, native_enum=False, create_constraint=True, length=16
    )


def _now() -> sa.TextClause:
    return sa.text("tickwork_now()")


def upgrade() -> None:
    op.execute(CLOCK)

    op.create_table(
        "daemons",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hostname", sqlmodel.AutoString(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column(
            "state", _enum("daemon_state", "RUNNING", "STOPPED", "DEAD"), nullable=False
        ),
        sa.Column("started_at", _utc(), server_default=_now(), nullable=False),
        sa.Column("heartbeat_at", _utc(), server_default=_now(), nullable=False),
        sa.Column("stopped_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemons")),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.AutoString(length=200), nullable=True),
        sa.Column("name", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("schedule", postgresql.JSONB(), nullable=False),
        sa.Column("action", postgresql.JSONB(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column(
            "state",
            _enum("job_state", "ACTIVE", "PAUSED", "COMPLETED"),
            nullable=False,
        ),
        sa.Column("state_reason", sqlmodel.AutoString(), nullable=True),
        sa.Column("next_run_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), server_default=_now(), nullable=False),
        sa.Column("updated_at", _utc(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    op.create_index("ix_jobs_created_at_id", "jobs", ["created_at", "id"])
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["next_run_at"],
        postgresql_where=sa.text("state = 'ACTIVE'"),
    )

    op.create_table(
        "executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", _utc(), nullable=True),
        sa.Column(
            "trigger",
            _enum("execution_trigger", "SCHEDULE", "MANUAL"),
            nullable=False,
        ),
        sa.Column(
            "status",
            _enum(
                "execution_status",
                "PENDING",
                "RUNNING",
                "RETRYING",
                "SUCCEEDED",
                "FAILED",
                "SKIPPED",
                "MISSED",
                "CANCELLED",
            ),
            nullable=False,
        ),
        sa.Column("run_at", _utc(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("daemon_id", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", _utc(), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("error", sqlmodel.AutoString(), nullable=True),
        sa.Column("created_at", _utc(), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_executions_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint(
            "job_id", "scheduled_for", name=op.f("uq_executions_job_id_scheduled_for")
        ),
    )
    op.create_index(
        "ix_executions_claimable",
        "executions",
        ["run_at"],
        postgresql_where=sa.text("status IN ('PENDING', 'RETRYING')"),
    )
    op.create_index(
        "ix_executions_job_history", "executions", ["job_id", "created_at", "id"]
    )
    op.create_index(
        "ix_executions_lease",
        "executions",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'RUNNING'"),
    )

    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("daemon_id", sa.Uuid(), nullable=True),
        sa.Column(
            "outcome",
            _enum("attempt_outcome", "SUCCEEDED", "FAILED", "ABANDONED"),
            nullable=False,
        ),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sqlmodel.AutoString(), nullable=True),
        sa.Column("response_excerpt", sqlmodel.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_attempts_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint(
            "execution_id", "number", name=op.f("uq_attempts_execution_id_number")
        ),
    )

    op.execute(EXECUTION_EVENTS)


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("executions")
    op.drop_table("jobs")
    op.drop_table("daemons")
    op.execute("DROP FUNCTION tickwork_notify_executions(uuid[])")
    op.execute("DROP FUNCTION tickwork_now()")
