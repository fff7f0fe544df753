"""partial index over the open inbox events, in id order

The worker's claim walks open events oldest first and stops after a few; without this index
it reads (and sorts) every open event, so a backlog slowed down every claim.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.create_index("ix_inbox_open", "inbox_events", ["id"], postgresql_where=_OPEN,
                    sqlite_where=_OPEN)


def downgrade() -> None:
    op.drop_index("ix_inbox_open", table_name="inbox_events")
