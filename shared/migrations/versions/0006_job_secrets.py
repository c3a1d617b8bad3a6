"""Job secrets, stored encrypted: signing secrets and sensitive headers.

The columns hold Fernet tokens written by the API under TICKWORK_SECRET_KEY
(shared/secrets.py). Headers that earlier releases stored in plain text in
``jobs.action`` stay there, since no key is known here: the daemon still sends
them, the API shows only their names, and the API moves them into
``secret_headers`` the next time the job is changed.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only nullable columns: processes of 0005 neither read nor write them, and
    # their jobs keep being delivered unsigned, as before.
    op.add_column("jobs", sa.Column("secret_headers", sa.LargeBinary(), nullable=True))
    op.add_column("jobs", sa.Column("signing_secrets", sa.LargeBinary(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "signing_previous_until",
            sqlmodel.sql.sqltypes.UTCDateTime(),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_column("jobs", "signing_previous_until")
    op.drop_column("jobs", "signing_secrets")
    op.drop_column("jobs", "secret_headers")
