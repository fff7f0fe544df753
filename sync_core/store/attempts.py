"""An inbox event's history: one row per worker attempt and per replay, only ever added.

The worker's settlement (``queue.settle``) writes the attempt rows in the statement before
it settles the events, from the rows it still holds the lease of, so an attempt is
recorded exactly when its settlement is. Functions never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, insert, literal, select

from .models import AttemptOutcome, EventAttempt, InboxEvent

_A = EventAttempt.__table__  # type: ignore[attr-defined]
_E = InboxEvent.__table__  # type: ignore[attr-defined]


def record_replay(conn: Connection, *, event_id: int, now: datetime, actor: str) -> None:
    conn.execute(insert(_A).values(
        event_id=event_id, number=0, started_at=None, finished_at=now,
        outcome=AttemptOutcome.REPLAYED.value, detail=None, actor=actor[:64]))


def settled_from(owned: Any, *, outcome: str) -> Any:
    """``INSERT … SELECT`` of one attempt row per event matched by ``owned`` (the settling
    statement's WHERE clause), ending at ``:now`` with ``:text`` as its detail."""
    from sqlalchemy import bindparam

    rows = select(_E.c.id, _E.c.attempts, _E.c.claimed_at, bindparam("now"),
                  literal(outcome), bindparam("text")).where(owned)
    return insert(_A).from_select(
        ["event_id", "number", "started_at", "finished_at", "outcome", "detail"], rows)


def interrupted(expired: Any) -> Any:
    """``INSERT … SELECT`` of one ``interrupted`` attempt per event matched by ``expired``
    (open, its lease run out): the attempt its worker began and never settled, ending when
    the lease did, with the worker named in the detail."""
    detail = literal("stopped mid-attempt: the lease of ", String) + _E.c.lease_owner \
        + literal(" ran out", String)
    rows = select(_E.c.id, _E.c.attempts, _E.c.claimed_at, _E.c.lease_until,
                  literal(AttemptOutcome.INTERRUPTED.value), detail).where(expired)
    return insert(_A).from_select(
        ["event_id", "number", "started_at", "finished_at", "outcome", "detail"], rows)


def of_event(conn: Connection, event_id: int) -> list[dict[str, Any]]:
    """Oldest first."""
    return of_events(conn, [event_id]).get(event_id, [])


def of_events(conn: Connection, event_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = sorted(set(event_ids))
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        rows = conn.execute(select(_A).where(_A.c.event_id.in_(ids)).order_by(_A.c.id))
        for row in rows.mappings():
            out[row["event_id"]].append(as_json(row))
    return out


def as_json(row: Any) -> dict[str, Any]:
    return {"number": row["number"], "started_at": iso(row["started_at"]),
            "finished_at": iso(row["finished_at"]), "outcome": row["outcome"],
            "detail": row["detail"], "actor": row["actor"]}


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
