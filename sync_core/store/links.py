"""The link table: per direction, kind and source key, the target id and the digest of
the essence our last write left on the target. Read before every plan (echo check) and
written with every settlement; indexed by source key and by target id."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, or_, select
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
    row = conn.execute(_BY_SOURCE, {"direction": direction, "kind": kind, "key": key}).first()
    return None if row is None else LinkRow(*row)


def by_target(conn: Connection, *, direction: str, kind: str, target_id: str) -> LinkRow | None:
    row = conn.execute(_BY_TARGET, {"direction": direction, "kind": kind,
                                    "key": target_id}).first()
    return None if row is None else LinkRow(*row)


# Looked up several times per event: built once, so SQLAlchemy neither constructs them nor
# computes their cache keys again (as store.queue does for the worker's statements).
_ROW = select(_T.c.kind, _T.c.source_key, _T.c.target_id, _T.c.essence_hash)
_THIS = (_T.c.direction == bindparam("direction"), _T.c.kind == bindparam("kind"))
_BY_SOURCE = _ROW.where(*_THIS, _T.c.source_key == bindparam("key"))
# The latest holder of an id a deleted entity once held.
_BY_TARGET = _ROW.where(*_THIS, _T.c.target_id == bindparam("key")).order_by(
    _T.c.updated_at.desc()).limit(1)


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


def intents_of(direction: str) -> str:
    """The link-table direction under which ``direction`` records the writes it is about
    to make (``record`` before the write): read only by the echo check, never taken for
    what was written (a write that then fails leaves its intent behind)."""
    return f"~{direction}"


def echo_digests_by_target(conn: Connection, *, direction: str,
                           entities: Iterable[tuple[str, str]],
                           superseded_by: str | None = None
                           ) -> dict[tuple[str, str], frozenset[str]]:
    """Like ``digests_by_target``, with the digests of ``direction``'s writes in flight
    (``intents_of``): every state its last write, or a write it started since, leaves.
    The target may call a write back before the write's settlement records it, and an
    earlier write's callback may come late. An intent older than the recorded write is
    history (a write that failed, then another that went through), not a state to expect."""
    wanted = set(entities)
    if not wanted:
        return {}
    params = {"kinds": sorted({kind for kind, _ in wanted}),
              "keys": sorted({key for _, key in wanted}),
              "directions": [direction, intents_of(direction)]}
    rows = [r for r in conn.execute(_echo_targets(), params) if (r[1], r[2]) in wanted]
    settled = {(kind, target): _aware(at) for d, kind, target, _, at in rows if d == direction}
    found: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
    for d, kind, target, digest, at in rows:
        entity = (kind, target)
        if d != direction and entity in settled and _aware(at) < settled[entity]:
            continue
        found.setdefault(entity, []).append((digest, _aware(at)))
    if superseded_by is not None and found:
        own = {(kind, key): _aware(at) for kind, key, at in conn.execute(
            _by_sources(), {"direction": superseded_by, "kinds": params["kinds"],
                            "keys": params["keys"]})}
        found = {entity: [(d, at) for d, at in written if entity not in own
                          or own[entity] <= at] for entity, written in found.items()}
    return {entity: frozenset(d for d, _ in written)
            for entity, written in found.items() if written}


def written_since(conn: Connection, *, direction: str, kind: str, target_id: str,
                  since: datetime) -> bool:
    """Whether ``direction`` recorded a write (or an intent, ``intents_of``) to
    ``target_id`` after ``since``: one indexed probe."""
    return conn.execute(_WRITTEN_SINCE, {
        "directions": [direction, intents_of(direction)], "kind": kind, "key": target_id,
        "since": since}).first() is not None


_WRITTEN_SINCE = select(_T.c.source_key).where(
    _T.c.direction.in_(bindparam("directions", expanding=True)),
    _T.c.kind == bindparam("kind"), _T.c.target_id == bindparam("key"),
    _T.c.updated_at > bindparam("since")).limit(1)


def in_flight(conn: Connection, *, direction: str, kind: str, target_id: str,
              after: datetime, since: datetime | None = None) -> bool:
    """Whether ``direction`` has a write to ``target_id`` in flight: an intent
    (``intents_of``) recorded after ``after`` and after the direction's settled write of
    the same entity (none: its first). With ``since``, or any write or intent recorded
    after it (``written_since``): both in one indexed probe (the hold's)."""
    return conn.execute(_IN_FLIGHT, {
        "directions": [direction, intents_of(direction)], "intents": intents_of(direction),
        "direction": direction, "kind": kind, "key": target_id, "after": after,
        "since": since}).first() is not None


_SETTLED = Link.__table__.alias("settled")  # type: ignore[attr-defined]
_IN_FLIGHT = select(_T.c.source_key).where(
    _T.c.direction.in_(bindparam("directions", expanding=True)),
    _T.c.kind == bindparam("kind"), _T.c.target_id == bindparam("key"),
    or_(_T.c.updated_at > bindparam("since"),  # NULL (no since): not true
        and_(_T.c.direction == bindparam("intents"), _T.c.updated_at > bindparam("after"),
             ~exists().where(_SETTLED.c.direction == bindparam("direction"),
                             _SETTLED.c.kind == _T.c.kind,
                             _SETTLED.c.source_key == _T.c.source_key,
                             _SETTLED.c.updated_at >= _T.c.updated_at)))).limit(1)


@functools.cache
def _echo_targets() -> Any:
    return select(_T.c.direction, _T.c.kind, _T.c.target_id, _T.c.essence_hash,
                  _T.c.updated_at).where(
        _T.c.direction.in_(bindparam("directions", expanding=True)),
        _T.c.kind.in_(bindparam("kinds", expanding=True)),
        _T.c.target_id.in_(bindparam("keys", expanding=True)),
        _T.c.essence_hash.is_not(None))


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
        _T.c.source_key == key, _T.c.target_id == key),
        ~_T.c.direction.startswith("~")).order_by(_T.c.direction))  # not intents
    return [{"direction": r["direction"], "kind": r["kind"], "source_key": r["source_key"],
             "target_id": r["target_id"], "essence_hash": r["essence_hash"],
             "updated_at": _iso(r["updated_at"])} for r in rows.mappings()]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _aware(value).isoformat()
