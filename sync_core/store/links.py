"""The link table: what we last wrote per entity and direction (echo suppression)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
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
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for row in rows:
        digest = state_hash(row.state)
        stmt = insert(_T).values(direction=direction, kind=row.kind, key=row.key,
                                 target_id=row.target_id, state_hash=digest, updated_at=now)
        update: dict[str, Any] = {"state_hash": digest, "updated_at": now}
        if row.target_id is not None:
            update["target_id"] = row.target_id
        conn.execute(stmt.on_conflict_do_update(index_elements=["direction", "kind", "key"],
                                                set_=update))


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
