"""The inbox on SQLite and on the real PostgreSQL: migrations, dedupe, group commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import inspect
from sqlmodel import Session

from sync_core.store import migrate
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, count_by_status, insert_new, list_events
from sync_core.store.models import utcnow
from sync_core.store.writer import InboxWriter


def _event(key: str, entity: str = "zhangsan", source: str = "wecom") -> NewEvent:
    return NewEvent(source=source, dedupe_key=key, entity_kind="user", entity_key=entity,
                    event_type="update_user", payload={"user_id": entity, "name": "张三"},
                    received_at=utcnow())


def test_migrations_create_the_inbox_and_are_reversible(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert "inbox_events" in inspect(engine).get_table_names()
        migrate.upgrade(engine)  # idempotent
        migrate.downgrade(engine, "base")
        assert "inbox_events" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_insert_skips_duplicates(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        assert insert_new(conn, [_event("a"), _event("b")]) == {("wecom", "a"), ("wecom", "b")}
    with engine.begin() as conn:
        # Same key again (a WeCom retry), and the same key from another source.
        assert insert_new(conn, [_event("a"), _event("a", source="authing")]) == {
            ("authing", "a")}
    with Session(engine) as session:
        rows = list_events(session)
        assert len(rows) == 3
        assert rows[0].payload == {"user_id": "zhangsan", "name": "张三"}
        assert rows[0].status == "pending" and rows[0].attempts == 0


def test_list_filters_and_pages(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        insert_new(conn, [_event(str(i), entity=f"u{i}") for i in range(5)])
    with Session(engine) as session:
        newest = list_events(session, limit=2)
        assert [r.entity_key for r in newest] == ["u4", "u3"]
        older = list_events(session, limit=10, before_id=newest[-1].id)
        assert [r.entity_key for r in older] == ["u2", "u1", "u0"]
        assert list_events(session, status="dead") == []
        assert count_by_status(session) == {"pending": 5}


async def test_group_commit_batches_concurrent_submits(engine) -> None:  # type: ignore[no-untyped-def]
    writer = InboxWriter(engine, batch_max=64)
    await writer.start()
    try:
        results = await asyncio.gather(*(writer.submit(_event(f"k{i % 150}", f"u{i}"))
                                         for i in range(300)))
    finally:
        await writer.stop()
    assert sum(not r.duplicate for r in results) == 150
    assert sum(r.duplicate for r in results) == 150
    assert writer.batches < 300  # commits were shared
    with Session(engine) as session:
        assert count_by_status(session) == {"pending": 150}


async def test_writer_reports_a_failed_commit_to_every_waiter(db_url: str) -> None:
    engine = make_engine(db_url)  # no migration: the table is missing
    writer = InboxWriter(engine)
    await writer.start()
    try:
        results = await asyncio.gather(writer.submit(_event("x")), writer.submit(_event("y")),
                                       return_exceptions=True)
    finally:
        await writer.stop()
        engine.dispose()
    assert all(isinstance(r, Exception) for r in results)


def test_received_at_round_trips_as_utc(engine) -> None:  # type: ignore[no-untyped-def]
    from sync_core.store.inbox import as_json

    event = _event("t")
    with engine.begin() as conn:
        insert_new(conn, [event])
    with Session(engine) as session:
        shown = as_json(list_events(session)[0])
    assert shown["received_at"].endswith("+00:00")
    from datetime import datetime

    parsed = datetime.fromisoformat(shown["received_at"])
    assert abs(parsed - event.received_at) < timedelta(seconds=1)


def test_links_record_the_last_written_state(engine) -> None:  # type: ignore[no-untyped-def]
    from sync_core.directory.essence import digest
    from sync_core.store import links

    with engine.begin() as conn:
        links.record(conn, direction="upstream", now=utcnow(), rows=[
            links.LinkRow("user", "zhangsan", None, digest({"name": "张三"}))])
        links.record(conn, direction="upstream", now=utcnow(), rows=[
            links.LinkRow("user", "zhangsan", "auth-1", digest({"name": "张三丰"}))])
        links.record(conn, direction="upstream", now=utcnow(), rows=[
            links.LinkRow("user", "zhangsan", None, digest({"name": "张三丰"}))])
        row = links.by_source(conn, direction="upstream", kind="user", key="zhangsan")
        digest_ = row.essence_hash if row else None
        target = conn.exec_driver_sql("SELECT target_id FROM links").scalar()
    assert digest_ == digest({"name": "张三丰"}) != digest({"name": "张三"})
    assert target == "auth-1"  # a later write without the id keeps it


def test_upgrade_releases_the_keys_of_events_already_claimed(db_url: str) -> None:
    """Migration 0006_delivery: only an event still waiting for its first claim keeps a
    key that a redelivery collapses into (issue 11, kind 1)."""
    from sync_core.store import queue

    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0004")
        with engine.begin() as conn:
            insert_new(conn, [_event("waiting"), _event("claimed", entity="lisi")])
            conn.exec_driver_sql("UPDATE inbox_events SET status = 'done', attempts = 1 "
                                 "WHERE dedupe_key = 'claimed'")
        migrate.upgrade(engine)
        with engine.begin() as conn:
            assert insert_new(conn, [_event("waiting"), _event("claimed", entity="lisi")]) == {
                ("wecom", "claimed")}
            assert queue.claim(conn, owner="w", now=utcnow(), lease=timedelta(seconds=30),
                               max_entities=5)
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_writer_replaces_a_connection_the_server_dropped(pg_url: str) -> None:
    """The writer keeps one connection between batches; when the server drops it (a
    restart), the next batch goes through on a new one: nobody is answered an error."""
    import psycopg

    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    writer = InboxWriter(engine)
    await writer.start()
    try:
        assert not (await writer.submit(_event("before"))).duplicate
        held = writer._conn
        assert held is not None
        pid = held.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert not (await writer.submit(_event("after"))).duplicate
        assert writer._conn is not None and writer._conn is not held
    finally:
        await writer.stop()
        engine.dispose()
    with Session(engine) as session:
        assert count_by_status(session) == {"pending": 2}
