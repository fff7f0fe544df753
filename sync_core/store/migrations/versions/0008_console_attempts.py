"""every attempt on an inbox event kept; who decided a run, and when

``event_attempts`` gets a row per worker attempt (and per replay), so a replay adds to an
event's history instead of overwriting it; ``inbox_events.claimed_at`` is when the attempt
in flight started. ``runs`` gains the operator's decision (approved, rejected, cancelled),
who made it and when.

Revision ID: 0008_console
Revises: 0007_engine
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_console"
down_revision = "0007_engine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
    )
    op.create_index("ix_event_attempts_event", "event_attempts", ["event_id", "id"])
    with op.batch_alter_table("inbox_events") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("decision", sa.String(16), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("decided_at")
        batch.drop_column("decided_by")
        batch.drop_column("decision")
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_column("claimed_at")
    op.drop_index("ix_event_attempts_event", table_name="event_attempts")
    op.drop_table("event_attempts")
