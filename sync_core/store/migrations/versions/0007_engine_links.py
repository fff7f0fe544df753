"""link table for echo suppression: source key and target id both indexed, essence hash

The rows keep their identities (direction, kind, source key → target id). The old hash was
of the WeCom source record, not of what the target shows, so it can never match an essence:
it is cleared (a row without a hash recognises no echo) and the next write fills it.

Revision ID: 0007_engine
Revises: 0006_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_engine"
down_revision = "0006_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.alter_column("key", new_column_name="source_key",
                           existing_type=sa.String(255), existing_nullable=False)
        batch.alter_column("state_hash", new_column_name="essence_hash",
                           existing_type=sa.String(64), nullable=True)
    op.execute(sa.text("UPDATE links SET essence_hash = NULL"))
    op.create_index("ix_links_target", "links", ["direction", "kind", "target_id"])


def downgrade() -> None:
    op.drop_index("ix_links_target", table_name="links")
    op.execute(sa.text("UPDATE links SET essence_hash = '' WHERE essence_hash IS NULL"))
    with op.batch_alter_table("links") as batch:
        batch.alter_column("essence_hash", new_column_name="state_hash",
                           existing_type=sa.String(64), nullable=False)
        batch.alter_column("source_key", new_column_name="key",
                           existing_type=sa.String(255), existing_nullable=False)
