"""Pooled connections (real PostgreSQL): one the server dropped is replaced before use, and
reads through ``autocommit`` leave no transaction behind."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text

from sync_core.store.db import autocommit, make_engine

pytestmark = pytest.mark.postgres


def test_a_connection_the_server_dropped_is_replaced_at_checkout(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_url, autocommit=True) as admin:  # a restart, a firewall
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        with autocommit(engine).connect() as conn:  # at once: the link reads' way in
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()


def test_autocommit_reads_hold_no_transaction_and_hand_back_a_plain_connection(
        pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        with autocommit(engine).connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            raw = conn.connection.dbapi_connection
            assert raw is not None and raw.info.transaction_status == TransactionStatus.IDLE
        with engine.begin() as conn:  # the same pooled connection, transactional again
            conn.execute(text("CREATE TEMP TABLE t (x int)"))
            raw = conn.connection.dbapi_connection
            assert raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS
    finally:
        engine.dispose()
