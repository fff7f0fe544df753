"""The link table: per direction, kind and source key, the target id and the digest of
the essence our last write left on the target. Read before every plan (echo check) and
written with every settlement; indexed by source key and by target id."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from .models import Link

_T = Link.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One entity we wrote: ``essence_hash`` is the digest of what the target now shows
    (None for a delete), ``target_id`` the target's id when known."""

    kind: str
    source_key: str
    target_id: str | None
    essence_hash: str | None


def record(conn: Connection, *, direction: str, rows: Iterable[LinkRow], now: datetime) -> None:
    """Upsert one row per entity; a known target id is kept when a later write lacks it."""
    params = [{"direction": direction, "kind": row.kind, "source_key": row.source_key,
               "target_id": row.target_id, "essence_hash": row.essence_hash,
               "updated_at": now} for row in rows]
    if params:
        conn.execute(_upsert(conn.dialect.name), params)


@functools.cache
def _upsert(dialect: str) -> Any:
    """Built once per dialect and run as one executemany."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_T)
    return stmt.on_conflict_do_update(
        index_elements=["direction", "kind", "source_key"],
        set_={"essence_hash": stmt.excluded.essence_hash,
              "updated_at": stmt.excluded.updated_at,
              "target_id": func.coalesce(stmt.excluded.target_id, _T.c.target_id)})


def by_source(conn: Connection, *, direction: str, kind: str, key: str) -> LinkRow | None:
    row = conn.execute(select(_T.c.kind, _T.c.source_key, _T.c.target_id, _T.c.essence_hash)
                       .where(_T.c.direction == direction, _T.c.kind == kind,
                              _T.c.source_key == key)).first()
    return None if row is None else LinkRow(*row)


def by_target(conn: Connection, *, direction: str, kind: str, target_id: str) -> LinkRow | None:
    row = conn.execute(select(_T.c.kind, _T.c.source_key, _T.c.target_id, _T.c.essence_hash)
                       .where(_T.c.direction == direction, _T.c.kind == kind,
                              _T.c.target_id == target_id)
                       # The latest holder of an id a deleted entity once held.
                       .order_by(_T.c.updated_at.desc()).limit(1)).first()
    return None if row is None else LinkRow(*row)


def digests_by_target(conn: Connection, *, direction: str,
                      entities: Iterable[tuple[str, str]],
                      superseded_by: str | None = None) -> dict[tuple[str, str], str]:
    """(kind, target id) → essence digest, for the given entities that have one: one
    statement for any number of entities (the worker's claim). ``superseded_by``: a direction
    whose own later write to the same entity (its source key) makes the digest stale: a
    state written before that is history, not the state the entity should echo."""
    wanted = set(entities)
    if not wanted:
        return {}
    params = {"kinds": sorted({kind for kind, _ in wanted}),
              "keys": sorted({key for _, key in wanted})}
    rows = conn.execute(_by_targets(), {"direction": direction, **params})
    found = {(kind, target): (digest, at) for kind, target, digest, at in rows
             if (kind, target) in wanted}
    if superseded_by is not None and found:
        own = {(kind, key): at for kind, key, at in conn.execute(
            _by_sources(), {"direction": superseded_by, **params})}
        found = {entity: (digest, at) for entity, (digest, at) in found.items()
                 if entity not in own or _aware(own[entity]) <= _aware(at)}
    return {entity: digest for entity, (digest, _) in found.items()}


@functools.cache
def _by_targets() -> Any:
    """Built once; the lists are expanding parameters, so one cached compilation."""
    return select(_T.c.kind, _T.c.target_id, _T.c.essence_hash, _T.c.updated_at).where(
        _T.c.direction == bindparam("direction"),
        _T.c.kind.in_(bindparam("kinds", expanding=True)),
        _T.c.target_id.in_(bindparam("keys", expanding=True)),
        _T.c.essence_hash.is_not(None))


@functools.cache
def _by_sources() -> Any:
    return select(_T.c.kind, _T.c.source_key, _T.c.updated_at).where(
        _T.c.direction == bindparam("direction"),
        _T.c.kind.in_(bindparam("kinds", expanding=True)),
        _T.c.source_key.in_(bindparam("keys", expanding=True)))


def every_digest_by_target(conn: Connection, *, direction: str,
                           superseded_by: str) -> dict[tuple[str, str], str]:
    """``digests_by_target`` for every entity ``direction`` wrote (a reconcile's): two
    statements, one pass over each direction's rows."""
    own = {(kind, key): at for kind, key, at in conn.execute(
        select(_T.c.kind, _T.c.source_key, _T.c.updated_at)
        .where(_T.c.direction == superseded_by))}
    rows = conn.execute(select(_T.c.kind, _T.c.target_id, _T.c.essence_hash, _T.c.updated_at)
                        .where(_T.c.direction == direction, _T.c.essence_hash.is_not(None),
                               _T.c.target_id.is_not(None)))
    return {(kind, target): digest for kind, target, digest, at in rows
            if (kind, target) not in own or _aware(own[(kind, target)]) <= _aware(at)}


def last_wrote(conn: Connection, *, direction: str, kind: str, target_id: str,
               essence_hash: str | None) -> bool:
    """Is this target state what we last wrote? True when ``direction``'s last write to
    ``target_id`` left exactly the essence whose digest is ``essence_hash``."""
    if essence_hash is None:
        return False
    row = by_target(conn, direction=direction, kind=kind, target_id=target_id)
    return row is not None and row.essence_hash == essence_hash


def written(conn: Connection, *, direction: str) -> list[LinkRow]:
    """Every link row of ``direction`` (a reconcile's record of what it manages)."""
    rows = conn.execute(select(_T.c.kind, _T.c.source_key, _T.c.target_id, _T.c.essence_hash)
                        .where(_T.c.direction == direction))
    return [LinkRow(*row) for row in rows]


def involving(conn: Connection, *, kind: str, key: str) -> list[dict[str, Any]]:
    """Every link row of ``kind`` whose source key or target id is ``key``, in any
    direction: what we last wrote for that object, and its id on the other side."""
    rows = conn.execute(select(_T).where(_T.c.kind == kind, or_(
        _T.c.source_key == key, _T.c.target_id == key)).order_by(_T.c.direction))
    return [{"direction": r["direction"], "kind": r["kind"], "source_key": r["source_key"],
             "target_id": r["target_id"], "essence_hash": r["essence_hash"],
             "updated_at": _iso(r["updated_at"])} for r in rows.mappings()]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _aware(value).isoformat()
