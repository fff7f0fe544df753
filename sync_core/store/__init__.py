"""Persistence: engine, SQLModel tables, inbox queue, migrations. Callers own transactions."""
