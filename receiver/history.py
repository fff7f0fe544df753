"""What the operator asks about one event or one object, read from the store in one go.

Shared by the JSON API (``GET /ops/events/{id}``, ``GET /ops/objects/{kind}/{key}``) and the
console pages, so both always show the same thing. Synchronous: call in a thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from sync_core.store import attempts, links, runs
from sync_core.store.attempts import iso
from sync_core.store.inbox import as_json, get_event
from sync_core.store.models import InboxEvent

OBJECT_KINDS = ("user", "department")
_EVENTS_SHOWN = 100
_RUNS_SHOWN = 50


def event_detail(engine: Engine, event_id: int) -> dict[str, Any] | None:
    """The event (with its payload and last outcome) and every attempt, oldest first."""
    with Session(engine) as session:
        row = get_event(session, event_id)
        if row is None:
            return None
        out = {**as_json(row), "payload": row.payload, "outcome": row.outcome,
               "processed_at": iso(row.processed_at), "claimed_at": iso(row.claimed_at),
               "in_flight": row.lease_owner is not None}
        out["history"] = attempts.of_event(session.connection(), event_id)
        return out


def object_history(engine: Engine, kind: str, key: str) -> dict[str, Any]:
    """One user or department across both directions. ``key`` may be the WeCom userid or
    department id, or the Authing id: the link table joins the two, so the events Authing
    sent about the object are found under its Authing id and WeCom's under its WeCom key."""
    with Session(engine) as session:
        conn = session.connection()
        linked = links.involving(conn, kind=kind, key=key)
        keys = {key} | {r["source_key"] for r in linked} | {r["target_id"] for r in linked
                                                     if r["target_id"]}
        rows = list(session.scalars(
            select(InboxEvent).where(col(InboxEvent.entity_kind) == kind,
                                     col(InboxEvent.entity_key).in_(sorted(keys)))
            .order_by(col(InboxEvent.id).desc()).limit(_EVENTS_SHOWN)))
        history = attempts.of_events(conn, [r.id for r in rows if r.id is not None])
        events = [{**as_json(r), "outcome": r.outcome, "history": history.get(r.id or 0, [])}
                  for r in rows]
        touched = runs.touching(conn, kind=kind, keys=keys, limit=_RUNS_SHOWN)
    return {"kind": kind, "key": key, "keys": sorted(keys), "links": linked,
            "events": events, "runs": touched}
