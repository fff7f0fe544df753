"""release the dedupe keys of events already claimed

A claim now releases an event's dedupe key (``<key>#<id>``, see ``store.queue``), so that a
byte-identical callback arriving after the entity was read is stored as a new hint. Events
claimed before this revision get the same treatment; only those still waiting for their
first claim keep a key that a redelivery collapses into.

Revision ID: 0006_delivery
Revises: 0005_budget
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_delivery"
down_revision = "0005_budget"
branch_labels = None
depends_on = None

_SUFFIX = "'#' || CAST(id AS VARCHAR(20))"


def upgrade() -> None:
    op.execute(sa.text(
        f"UPDATE inbox_events SET dedupe_key = dedupe_key || {_SUFFIX} "
        f"WHERE NOT (status = 'pending' AND attempts = 0) "
        f"AND dedupe_key NOT LIKE '%' || {_SUFFIX}"))


def downgrade() -> None:
    # Released keys stay released: restoring them could collide with a later copy.
    pass
