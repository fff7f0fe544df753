"""A claim's cost does not grow with the backlog (real PostgreSQL).

The planner's statistics lag a queue that fills in seconds (autovacuum analyses later), and
with them it sorted every open event to take the oldest few: each claim then read the whole
backlog, and the worker's claim cycle, which runs one at a time, became the service's
throughput limit (bench/RESULTS.md, apply downstream).
"""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine

from sync_core.store import queue
from sync_core.store.models import utcnow
from tests.store.pg_reads import rows_read

pytestmark = pytest.mark.postgres

BACKLOG = 4_000  # open events, three per entity
SCAN_BUDGET = 400  # tuples a claim of one entity may fetch (it scans 8 rows a slot)


def _fill(pg_url: str, *, done: int, open_: int) -> None:
    """Settled history, then a burst of open events the statistics have not seen (analysed
    while the table was empty, as at a service's start); 5 entities in flight."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE inbox_events")
        rows = [("authing", f"d{i}", "user", f"u{i // 3}", "user:updated", json.dumps({}),
                 "done" if i < done else "pending") for i in range(done + open_)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO inbox_events (source, dedupe_key, received_at, entity_kind, "
                "entity_key, event_type, payload, status, attempts, next_attempt_at, "
                "transient_failures) VALUES (%s, %s, now(), %s, %s, %s, %s, %s, 0, now(), 0)",
                rows)
        conn.execute("UPDATE inbox_events SET lease_owner = 'other', lease_until = now() + "
                      "interval '1 minute' WHERE id IN (SELECT id FROM inbox_events WHERE "
                      "status = 'pending' ORDER BY id LIMIT 15)")


def test_a_claim_reads_a_few_rows_whatever_the_backlog(pg_engine: Engine, pg_url: str) -> None:
    _fill(pg_url, done=2_000, open_=BACKLOG)
    before = rows_read(pg_url, "inbox_events")
    with pg_engine.begin() as conn:
        claims = queue.claim(conn, owner="w1", now=utcnow(), lease=timedelta(seconds=30),
                             max_entities=1, sources=("authing",))
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    after = rows_read(pg_url, "inbox_events")
    # The oldest entity not in flight, all its open events.
    assert [(c.entity_key, len(c.ids)) for c in claims] == [("u672", 3)]
    assert after - before < SCAN_BUDGET, (
        f"one claim read {after - before} rows of a {BACKLOG}-event backlog")


@pytest.mark.parametrize("before", ["on", "off"])
def test_the_claim_leaves_the_planner_settings_as_it_found_them(pg_engine: Engine,
                                                               pg_url: str, before: str) -> None:
    _fill(pg_url, done=0, open_=30)
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL enable_sort = {before}")
        queue.claim(conn, owner="w1", now=utcnow(), lease=timedelta(seconds=30),
                    max_entities=2)
        assert conn.exec_driver_sql("SHOW enable_sort").scalar() == before
