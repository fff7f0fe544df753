"""the link table's target index leads with the target id

It led with (direction, kind), the primary key's first two columns. On statistics gathered
while the table was empty (a service's first minute, before autovacuum analyses it), the
planner took it for lookups by source key and filtered every link of that kind; the claim's
echo read and the write hold's probe did the same. Led by the target id, it serves only
lookups by target id, and the primary key the rest.

Revision ID: 0009_links_target
Revises: 0008_console
"""

from __future__ import annotations

from alembic import op

revision = "0009_links_target"
down_revision = "0008_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_links_target", table_name="links")
    op.create_index("ix_links_target", "links", ["target_id", "direction", "kind"])


def downgrade() -> None:
    op.drop_index("ix_links_target", table_name="links")
    op.create_index("ix_links_target", "links", ["direction", "kind", "target_id"])
