"""A job's own client certificate key, stored encrypted.

The certificate itself is public and lives in ``jobs.action``; its private key
is a Fernet token written by the API under TICKWORK_SECRET_KEY
(shared/secrets.py), opened only by the daemon, to connect.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and only added: processes of 0006 neither read nor write it.
    op.add_column("jobs", sa.Column("client_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "client_key")
