"""A link lookup reads a row or two, whatever the table's statistics (real PostgreSQL).

The link table fills from empty as a service starts, and autovacuum analyses it a minute or
more later. Until then the planner knows nothing, and a lookup by source key could go
through the target index on its first two columns (direction, kind) and filter every link
of that kind: 1,246 pages a lookup in the downstream benchmark, 0.6 ms of PostgreSQL's CPU
twice an event (bench/RESULTS.md, issue 10).
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine

from sync_core.store import links
from sync_core.store.models import utcnow
from tests.store.pg_reads import rows_read

pytestmark = pytest.mark.postgres

LINKS = 3_000  # of one direction and kind
REPEATS = 8  # psycopg prepares a statement after 5 runs: a generic plan is tried too
BUDGET = 4 * REPEATS  # a lookup fetches the links of its target id, one per direction


def _fill(pg_url: str) -> None:
    """Analysed empty, then filled: the statistics of a service's first minute."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE links")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO links (direction, kind, source_key, target_id, essence_hash, "
                "updated_at) VALUES (%s, 'user', %s, %s, %s, now() - interval '1 hour')",
                [(direction, f"s{i}", f"t{i}", f"{i:064x}")
                 for direction in ("downstream", "upstream", links.intents_of("upstream"))
                 for i in range(LINKS if direction == "downstream" else LINKS // 10)])


LOOKUPS = {
    "by_source": lambda conn, i: links.by_source(
        conn, direction="downstream", kind="user", key=f"s{i}"),
    "by_target": lambda conn, i: links.by_target(
        conn, direction="downstream", kind="user", target_id=f"t{i}"),
    "written_since": lambda conn, i: links.written_since(
        conn, direction="upstream", kind="user", target_id=f"t{i}",
        since=utcnow() - timedelta(minutes=1)),
    "digests_by_target": lambda conn, i: links.digests_by_target(
        conn, direction="downstream", entities=[("user", f"t{i}")], superseded_by="upstream"),
    "echo_digests_by_target": lambda conn, i: links.echo_digests_by_target(
        conn, direction="upstream", entities=[("user", f"t{i}")],
        superseded_by="downstream"),
}


@pytest.mark.parametrize("lookup", sorted(LOOKUPS))
def test_a_lookup_reads_its_own_rows_on_a_table_analysed_empty(
        pg_engine: Engine, pg_url: str, lookup: str) -> None:
    _fill(pg_url)
    before = rows_read(pg_url, "links")
    with pg_engine.connect() as conn:
        for i in range(REPEATS):
            LOOKUPS[lookup](conn, 7 * i)
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    read = rows_read(pg_url, "links") - before
    assert read <= BUDGET, f"{REPEATS} lookups read {read} rows of {LINKS}"
