"""The link table: what we last wrote per entity and direction (echo suppression)."""

from __future__ import annotations

import hashlib
import json
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


def record(conn: Connection, *, direction: str, kind: str, key: str, target_id: str | None,
           digest: str, now: datetime) -> None:
    values = {"direction": direction, "kind": kind, "key": key, "target_id": target_id,
              "state_hash": digest, "updated_at": now}
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_T).values(**values)
    update = {"state_hash": digest, "updated_at": now}
    if target_id is not None:
        update["target_id"] = target_id
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
