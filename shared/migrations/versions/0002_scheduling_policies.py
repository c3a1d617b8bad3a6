"""Scheduling policies: catch-up, overlap, jitter, auto-pause; cancellation."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The one way an execution is cancelled, by a user or by the REPLACE overlap
# policy. In one statement it marks the execution CANCELLED and bumps its fence,
# so whatever its holder writes later is rejected; a running attempt is kept as
# CANCELLED. The NOTIFY only tells the holder sooner: a holder that misses it
# finds out when its next lease renewal no longer sees the run. Returns the ids
# it cancelled, which the caller announces with its other changes.
CANCEL = """
CREATE FUNCTION tickwork_cancel_executions(ids uuid[], why text)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    cancelled uuid[];
    i int := 1;
BEGIN
    WITH target AS (
        SELECT id, status, attempt, daemon_id, started_at
        FROM executions
        WHERE id = ANY(ids) AND status IN ('PENDING', 'RUNNING', 'RETRYING')
        FOR UPDATE
    ), stopped AS (
        UPDATE executions e
        SET status = 'CANCELLED', fence = e.fence + 1, lease_expires_at = NULL,
            finished_at = tickwork_now(), reason = why
        FROM target t
        WHERE e.id = t.id
        RETURNING e.id
    ), recorded AS (
        INSERT INTO attempts
            (execution_id, number, daemon_id, outcome, started_at, finished_at, error)
        SELECT id, attempt, daemon_id, 'CANCELLED', started_at, tickwork_now(), why
        FROM target
        WHERE status = 'RUNNING'
        ON CONFLICT (execution_id, number) DO NOTHING
    )
    SELECT array_agg(id) INTO cancelled FROM stopped;

    WHILE cancelled IS NOT NULL AND i <= cardinality(cancelled) LOOP
        PERFORM pg_notify(
            'tickwork_cancel', array_to_string(cancelled[i:i + 199], ',')
        );
        i := i + 200;
    END LOOP;
    RETURN QUERY SELECT unnest(coalesce(cancelled, '{}'::uuid[]));
END
$$
"""

OUTCOMES_BEFORE = "'SUCCEEDED', 'FAILED', 'ABANDONED'"
OUTCOMES_AFTER = "'SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELLED'"


def _outcomes(values: str) -> None:
    name = op.f("ck_attempts_attempt_outcome")
    op.drop_constraint(name, "attempts", type_="check")
    op.create_check_constraint(name, "attempts", f"outcome IN ({values})")


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "catch_up",
            sa.Enum(
                "NONE",
                "LATEST",
                "ALL",
                name="catch_up",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="LATEST",
            nullable=False,
        ),
    )
    op.add_column(
        "jobs",
        sa.Column("catch_up_limit", sa.Integer(), server_default="10", nullable=False),
    )
    op.add_column(
        "jobs",
        sa.Column(
            "misfire_grace_seconds", sa.Integer(), server_default="60", nullable=False
        ),
    )
    op.add_column(
        "jobs",
        sa.Column(
            "overlap",
            sa.Enum(
                "FORBID",
                "ALLOW",
                "REPLACE",
                name="overlap",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="FORBID",
            nullable=False,
        ),
    )
    op.add_column(
        "jobs",
        sa.Column("max_in_flight", sa.Integer(), server_default="5", nullable=False),
    )
    op.add_column(
        "jobs",
        sa.Column("jitter_seconds", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "jobs", sa.Column("pause_after_failures", sa.Integer(), nullable=True)
    )
    op.add_column(
        "jobs",
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default="0", nullable=False
        ),
    )
    op.add_column(
        "executions",
        sa.Column("covers", sa.Integer(), server_default="1", nullable=False),
    )
    op.add_column("executions", sa.Column("reason", sa.String(), nullable=True))
    op.create_index(
        "ix_executions_unfinished",
        "executions",
        ["job_id"],
        postgresql_where=sa.text("status IN ('PENDING', 'RUNNING', 'RETRYING')"),
    )
    _outcomes(OUTCOMES_AFTER)
    op.execute(CANCEL)


def downgrade() -> None:
    op.execute("DROP FUNCTION tickwork_cancel_executions(uuid[], text)")
    op.execute("DELETE FROM attempts WHERE outcome = 'CANCELLED'")
    _outcomes(OUTCOMES_BEFORE)
    op.drop_index("ix_executions_unfinished", table_name="executions")
    op.drop_column("executions", "reason")
    op.drop_column("executions", "covers")
    for column in (
        "consecutive_failures",
        "pause_after_failures",
        "jitter_seconds",
        "max_in_flight",
        "overlap",
        "misfire_grace_seconds",
        "catch_up_limit",
        "catch_up",
    ):
        op.drop_column("jobs", column)
