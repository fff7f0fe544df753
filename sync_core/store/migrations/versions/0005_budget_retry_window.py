"""transient failures spend a time window, not the attempt budget

``transient_since`` is when the entity's current run of transient failures (an upstream
outage, throttling) began; ``transient_failures`` counts the attempts it spent, which the
attempt budget does not count.

Revision ID: 0005_budget
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_budget"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.add_column(sa.Column("transient_since", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("transient_failures", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_column("transient_failures")
        batch.drop_column("transient_since")
