"""How many rows PostgreSQL has read from a table of the test's schema: the sequential
scans' rows and the index scans' heap fetches, as its statistics count them. A test
flushes its own backend's counters (``pg_stat_force_next_flush``) before asking."""

from __future__ import annotations

import psycopg


def rows_read(pg_url: str, table: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                           "FROM pg_stat_user_tables WHERE relname = %s "
                           "AND schemaname = current_schema()", (table,)).fetchone()
        return int(row[0]) if row else 0
