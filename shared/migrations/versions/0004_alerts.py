"""Alerts: a per-job alert URL and the outbox of events waiting to be sent."""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KINDS = "kind IN ('EXECUTION_FAILED', 'JOB_PAUSED', 'FIRE_TIMES_MISSED')"


def _utc() -> sa.types.TypeEngine:
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    # Only adds, so daemons and APIs of 0003 keep working during a rolling
    # upgrade: they neither read the column nor write the table.
    op.add_column("jobs", sa.Column("alert_url", sqlmodel.AutoString(), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        # No foreign key: retention prunes executions, and their alerts stay.
        sa.Column("execution_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at",
            _utc(),
            server_default=sa.text("tickwork_now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            _utc(),
            server_default=sa.text("tickwork_now()"),
            nullable=True,
        ),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.Column("last_error", sqlmodel.AutoString(), nullable=True),
        sa.CheckConstraint(KINDS, name=op.f("ck_alerts_kind")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_alerts_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    # Deleting a job deletes its alerts; this keeps that from scanning them all.
    op.create_index("ix_alerts_job_id", "alerts", ["job_id"])
    op.create_index(
        "ix_alerts_due",
        "alerts",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_due", table_name="alerts")
    op.drop_index("ix_alerts_job_id", table_name="alerts")
    op.drop_table("alerts")
    op.drop_column("jobs", "alert_url")
