"""Alembic environment. Run through ``sync_core.store.migrate``, not the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from sync_core.store import models  # noqa: F401  (registers the tables)

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
