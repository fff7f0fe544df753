"""The link table: what we last wrote per entity and direction (echo suppression)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from .models import Link

_T = Link.__table__  # type: ignore[attr-defined]


def state_hash(state: Any) -> str:
    """Stable digest of a canonical state (dataclass/dict/list of plain values)."""
    blob = json.dumps(state, sort_keys=True, ensure_ascii=False, default=_plain)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One entity we wrote: ``state`` is the canonical source state it now mirrors
    (None for a delete), ``target_id`` the other side's id when known."""

    kind: str
    key: str
    target_id: str | None
    state: Any


def record(conn: Connection, *, direction: str, rows: Iterable[LinkRow], now: datetime) -> None:
    """Upsert one row per entity; a known target id is kept when a later write lacks it."""
    params = [{"direction": direction, "kind": row.kind, "key": row.key,
               "target_id": row.target_id, "state_hash": state_hash(row.state),
               "updated_at": now} for row in rows]
    if params:
        conn.execute(_upsert(conn.dialect.name), params)


@functools.cache
def _upsert(dialect: str) -> Any:
    """Built once per dialect and run as one executemany."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_T)
    return stmt.on_conflict_do_update(
        index_elements=["direction", "kind", "key"],
        set_={"state_hash": stmt.excluded.state_hash, "updated_at": stmt.excluded.updated_at,
              "target_id": func.coalesce(stmt.excluded.target_id, _T.c.target_id)})


def last_written(conn: Connection, *, direction: str, kind: str, key: str) -> str | None:
    return conn.execute(select(_T.c.state_hash).where(
        _T.c.direction == direction, _T.c.kind == kind, _T.c.key == key)).scalar()


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def involving(conn: Connection, *, kind: str, key: str) -> list[dict[str, Any]]:
    """Every link row of ``kind`` whose source key or target id is ``key``, in any
    direction: what we last wrote for that object, and its id on the other side."""
    rows = conn.execute(select(_T).where(_T.c.kind == kind, or_(
        _T.c.key == key, _T.c.target_id == key)).order_by(_T.c.direction))
    return [{"direction": r["direction"], "kind": r["kind"], "key": r["key"],
             "target_id": r["target_id"], "state_hash": r["state_hash"],
             "updated_at": _iso(r["updated_at"])} for r in rows.mappings()]


def _iso(value: datetime) -> str:
    from datetime import UTC

    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
