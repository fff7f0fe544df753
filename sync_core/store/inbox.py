"""Inbox queries. Functions take a session or connection and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col

from .models import EventStatus, InboxEvent, utcnow


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What the edge hands to the store: everything but the id and queue bookkeeping."""

    source: str
    dedupe_key: str
    entity_kind: str
    entity_key: str
    event_type: str
    payload: dict[str, Any]
    received_at: datetime
    # Settled on arrival (``done`` with this outcome) instead of queued: an event no
    # running direction applies, kept for the record but never replayed as a write.
    settled: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dedupe_key": self.dedupe_key,
            "received_at": self.received_at,
            "entity_kind": self.entity_kind,
            "entity_key": self.entity_key[:255],
            "event_type": self.event_type[:64],
            "payload": self.payload,
            "status": (EventStatus.PENDING if self.settled is None
                       else EventStatus.DONE).value,
            "attempts": 0,
            "next_attempt_at": self.received_at,
            "last_error": None,
            "processed_at": None if self.settled is None else self.received_at,
            "outcome": self.settled,
        }


def insert_new(conn: Connection, events: Sequence[NewEvent]) -> set[tuple[str, str]]:
    """Insert ``events``, skipping any (source, dedupe_key) already stored.

    Returns the (source, dedupe_key) pairs that were new. One statement for the whole
    batch: this is what makes group commit cheap.
    """
    unique: dict[tuple[str, str], NewEvent] = {}
    for event in events:
        unique.setdefault((event.source, event.dedupe_key), event)
    if not unique:
        return set()
    rows = [event.row() for event in unique.values()]
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, rows)
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    stmt: Any = sqlite.insert(table).on_conflict_do_nothing(
        index_elements=["source", "dedupe_key"]).returning(table.c.source, table.c.dedupe_key)
    # executemany + RETURNING: SQLAlchemy folds this into multi-row INSERTs.
    result = conn.execute(stmt, rows)
    return {(row.source, row.dedupe_key) for row in result}


# One statement text whatever the batch size, so PostgreSQL and psycopg parse and prepare
# it once, instead of once per distinct multi-row VALUES shape.
_PG_INSERT = text("""
    INSERT INTO inbox_events (source, dedupe_key, received_at, entity_kind, entity_key,
                              event_type, payload, status, attempts, next_attempt_at,
                              processed_at, outcome)
    SELECT s, k, r, ek, ey, et, p::json, st, 0, r, pa, o
    FROM unnest(CAST(:s AS text[]), CAST(:k AS text[]), CAST(:r AS timestamptz[]),
                CAST(:ek AS text[]), CAST(:ey AS text[]), CAST(:et AS text[]),
                CAST(:p AS text[]), CAST(:st AS text[]), CAST(:pa AS timestamptz[]),
                CAST(:o AS text[])) AS t(s, k, r, ek, ey, et, p, st, pa, o)
    ON CONFLICT ON CONSTRAINT uq_inbox_source_dedupe DO NOTHING
    RETURNING source, dedupe_key
""")


def _insert_postgres(conn: Connection, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    result = conn.execute(_PG_INSERT, {
        "s": [r["source"] for r in rows], "k": [r["dedupe_key"] for r in rows],
        "r": [r["received_at"] for r in rows], "ek": [r["entity_kind"] for r in rows],
        "ey": [r["entity_key"] for r in rows], "et": [r["event_type"] for r in rows],
        "p": [json.dumps(r["payload"], ensure_ascii=False) for r in rows],
        "st": [r["status"] for r in rows], "pa": [r["processed_at"] for r in rows],
        "o": [r["outcome"] for r in rows],
    })
    return {(row.source, row.dedupe_key) for row in result}


def list_events(session: Session, *, status: str | None = None, source: str | None = None,
                entity_kind: str | None = None, entity_key: str | None = None,
                limit: int = 100, before_id: int | None = None) -> list[InboxEvent]:
    """Newest first; each given filter must match exactly; ``before_id`` pages backwards."""
    query = select(InboxEvent).order_by(col(InboxEvent.id).desc()).limit(limit)
    for column, value in ((col(InboxEvent.status), status), (col(InboxEvent.source), source),
                          (col(InboxEvent.entity_kind), entity_kind),
                          (col(InboxEvent.entity_key), entity_key)):
        if value:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(col(InboxEvent.id) < before_id)
    return list(session.scalars(query))


def get_event(session: Session, event_id: int) -> InboxEvent | None:
    return session.get(InboxEvent, event_id)


def count_by_status(session: Session) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(
        select(col(InboxEvent.status), func.count()).group_by(col(InboxEvent.status)))
    return {status: int(n) for status, n in rows}


def as_json(event: InboxEvent) -> dict[str, Any]:
    """The contract's ``GET /ops/events`` item shape (plus a few extra fields)."""
    return {
        "id": event.id,
        "source": event.source,
        "entity_kind": event.entity_kind,
        "entity_key": event.entity_key,
        "event_type": event.event_type,
        "status": event.status,
        "attempts": event.attempts,
        "received_at": _iso(event.received_at),
        "next_attempt_at": _iso(event.next_attempt_at),
        "last_error": event.last_error,
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.isoformat()


__all__ = ["NewEvent", "insert_new", "list_events", "get_event", "count_by_status", "as_json",
           "utcnow"]
