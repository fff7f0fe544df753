"""inbox events

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("source", "dedupe_key", name="uq_inbox_source_dedupe"),
    )
    op.create_index("ix_inbox_status_next", "inbox_events", ["status", "next_attempt_at"])
    op.create_index("ix_inbox_entity", "inbox_events", ["entity_kind", "entity_key"])


def downgrade() -> None:
    op.drop_index("ix_inbox_entity", table_name="inbox_events")
    op.drop_index("ix_inbox_status_next", table_name="inbox_events")
    op.drop_table("inbox_events")
