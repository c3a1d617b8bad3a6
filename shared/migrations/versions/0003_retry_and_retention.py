"""Per-job retry backoff and history retention."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("retry_base_seconds", sa.Float()),
    ("retry_max_seconds", sa.Float()),
    ("keep_executions", sa.Integer()),
)


def upgrade() -> None:
    # Nullable columns with no default: adding them rewrites nothing, so daemons
    # and APIs of the previous version keep working during a rolling upgrade.
    for name, type_ in COLUMNS:
        op.add_column("jobs", sa.Column(name, type_, nullable=True))
    # Retention deletes the oldest finished executions of a job first.
    op.create_index(
        "ix_executions_finished",
        "executions",
        ["job_id", "finished_at"],
        postgresql_where=sa.text(
            "status IN ('SUCCEEDED', 'FAILED', 'SKIPPED', 'MISSED', 'CANCELLED')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_finished", table_name="executions")
    for name, _ in reversed(COLUMNS):
        op.drop_column("jobs", name)
