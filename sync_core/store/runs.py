"""Run records: create, lease, progress, items, finish, list. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from .models import Run, RunItem, RunStatus

_R = Run.__table__  # type: ignore[attr-defined]
_NOT_CANCELLED = or_(_R.c.decision.is_(None), _R.c.decision != "cancelled")
_I = RunItem.__table__  # type: ignore[attr-defined]
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
_STAGED = "staged"  # run_items.STAGED: a delete the deletion guard holds for a decision
COUNTER_KEYS = ("created", "updated", "deleted", "unchanged", "skipped", "failed")


class RunConflict(Exception):
    """Another run of the same direction is queued or running."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} of this direction is still active")
        self.run_id = run_id


def create(conn: Connection, *, direction: str, mode: str, source: str, dry_run: bool,
           trigger: str, owner: str, now: datetime, lease: timedelta) -> int:
    """A new queued run leased to ``owner``; refuses while another of its direction is
    active (PostgreSQL: serialised by an advisory lock so two replicas cannot both pass)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_305_003})
    active = conn.execute(select(_R.c.id).where(
        _R.c.direction == direction, _R.c.status.in_(ACTIVE)).limit(1)).scalar()
    if active is not None:
        raise RunConflict(int(active))
    result = conn.execute(insert(_R).values(
        direction=direction, mode=mode, source=source, dry_run=dry_run, trigger=trigger,
        status=RunStatus.QUEUED.value, counters=dict.fromkeys(COUNTER_KEYS, 0), notes=[],
        created_at=now, lease_owner=owner, lease_until=now + lease, progress_done=0,
        progress_total=0).returning(_R.c.id))
    return int(result.scalar_one())


def start(conn: Connection, *, run_id: int, now: datetime) -> None:
    conn.execute(update(_R).where(_R.c.id == run_id).values(
        status=RunStatus.RUNNING.value, started_at=now))


def renew(conn: Connection, *, run_id: int, owner: str, until: datetime) -> bool:
    result = conn.execute(update(_R).where(_R.c.id == run_id, _R.c.lease_owner == owner)
                          .values(lease_until=until))
    return bool(result.rowcount)


def progress(conn: Connection, *, run_id: int, done: int, total: int) -> None:
    conn.execute(update(_R).where(_R.c.id == run_id).values(progress_done=done,
                                                            progress_total=total))


def add_note(conn: Connection, *, run_id: int, note: str) -> None:
    notes = conn.execute(select(_R.c.notes).where(_R.c.id == run_id)).scalar() or []
    conn.execute(update(_R).where(_R.c.id == run_id).values(notes=[*notes, note]))


def add_items(conn: Connection, *, run_id: int, items: Sequence[dict[str, Any]],
              first_seq: int) -> None:
    """``items``: ``engine.run_log.item_of`` dicts. Their ``written`` flag is not stored:
    it serves the counters, computed before this; the error text says it to readers."""
    if items:
        conn.execute(insert(_I), [
            {"run_id": run_id, "seq": first_seq + i,
             **{k: v for k, v in item.items() if k != "written"}}
            for i, item in enumerate(items)])


def update_item(conn: Connection, *, item_id: int, status: str, error: str | None,
                action: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "error": error}
    if action is not None:
        values["action"] = action
    conn.execute(update(_I).where(_I.c.id == item_id).values(**values))


def finish(conn: Connection, *, run_id: int, status: str, counters: dict[str, int],
           now: datetime, error: str | None = None) -> None:
    """Record the run's end; a run an operator cancelled keeps its cancellation."""
    conn.execute(update(_R).where(_R.c.id == run_id, _NOT_CANCELLED).values(
        status=status, counters=counters, finished_at=now, error=error, lease_owner=None,
        lease_until=None))


class DecisionError(Exception):
    """The run is not in a state that takes this decision (→ 409); each decision is one
    conditional update, so of concurrent ones only the first finds the state it needs."""


def approve(conn: Connection, *, run_id: int, actor: str, owner: str, now: datetime,
            until: datetime) -> dict[str, Any]:
    """Blocked → running, leased to ``owner`` until ``until``, noting who approved: one
    conditional update, so of concurrent approvals (or an approval racing a reject) exactly
    one wins, on SQLite and PostgreSQL alike. Returns the run as approved. Raises
    LookupError or DecisionError (not blocked, e.g. another decision came first)."""
    row = conn.execute(update(_R).where(
        _R.c.id == run_id, _R.c.status == RunStatus.BLOCKED.value,
        _R.c.dry_run.is_(False)).values(
        status=RunStatus.RUNNING.value, started_at=now, lease_owner=owner, lease_until=until,
        decision="approved", decided_by=actor[:64], decided_at=now,
    ).returning(*_R.c)).mappings().first()
    if row is None:
        raise _not_in(conn, run_id, "blocked")
    return dict(row)


def reject(conn: Connection, *, run_id: int, actor: str, now: datetime) -> dict[str, Any]:
    """Drop a blocked run's staged deletes: they become ``skipped`` items saying who
    rejected them, and the run ends with what it applied. Raises LookupError or
    DecisionError (not blocked)."""
    # The decision first, conditionally: an approval racing it finds the run not blocked.
    row = conn.execute(update(_R).where(
        _R.c.id == run_id, _R.c.status == RunStatus.BLOCKED.value,
        _R.c.dry_run.is_(False)).values(
        status=RunStatus.SUCCEEDED.value, error=None, decision="rejected",
        decided_by=actor[:64], decided_at=now, finished_at=now,
    ).returning(*_R.c)).mappings().first()
    if row is None:
        raise _not_in(conn, run_id, "blocked")
    # Staged items already count as skipped: the counters stay as they are.
    conn.execute(update(_I).where(_I.c.run_id == run_id, _I.c.status == _STAGED).values(
        status="skipped", error=f"not applied: rejected by {actor[:64]}"))
    failed = conn.execute(select(_I.c.id).where(_I.c.run_id == run_id,
                                                _I.c.status == "failed").limit(1)).first()
    status = RunStatus.PARTIAL.value if failed else RunStatus.SUCCEEDED.value
    if failed:
        conn.execute(update(_R).where(_R.c.id == run_id).values(status=status))
    return {**dict(row), "status": status}


def cancel(conn: Connection, *, run_id: int, actor: str, now: datetime) -> None:
    """Stop a queued or running run: it is failed at once, whatever its process does next
    (``finish`` leaves a cancelled run alone, and its lease is gone). Raises LookupError or
    DecisionError (not active)."""
    result = conn.execute(update(_R).where(_R.c.id == run_id, _R.c.status.in_(ACTIVE)).values(
        status=RunStatus.FAILED.value, error=f"cancelled by {actor[:64]}", finished_at=now,
        lease_owner=None, lease_until=None, decision="cancelled", decided_by=actor[:64],
        decided_at=now))
    if not result.rowcount:
        raise _not_in(conn, run_id, "queued or running")


def _not_in(conn: Connection, run_id: int, wanted: str) -> Exception:
    """Why a conditional decision matched no row: LookupError or DecisionError."""
    row = conn.execute(select(_R.c.status, _R.c.dry_run).where(_R.c.id == run_id)).first()
    if row is None:
        return LookupError(f"no run {run_id}")
    status, dry_run = row
    if dry_run and status == RunStatus.BLOCKED.value:
        return DecisionError(f"run {run_id} is a dry run: it staged nothing to decide")
    return DecisionError(f"run {run_id} is {status}, not {wanted}")


def sweep_stale(conn: Connection, *, now: datetime) -> list[int]:
    """Fail every active run whose lease expired: its process died, and a crash must not
    block future runs of that direction."""
    stale = [int(r) for r in conn.execute(select(_R.c.id).where(
        _R.c.status.in_(ACTIVE), _R.c.lease_until < now)).scalars()]
    if stale:
        conn.execute(update(_R).where(_R.c.id.in_(stale)).values(
            status=RunStatus.FAILED.value, finished_at=now, lease_owner=None,
            lease_until=None, error="the process running it stopped (lease expired)"))
    return stale


def get(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(_R).where(_R.c.id == run_id)).mappings().first()
    return None if row is None else dict(row)


def items(conn: Connection, run_id: int, *, status: str | None = None,
          kind: str | None = None, action: str | None = None, key: str | None = None,
          limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """The run's items in order; each given filter must match exactly; ``limit`` and
    ``offset`` page through them."""
    query = select(_I).where(_I.c.run_id == run_id).order_by(_I.c.seq)
    for column, value in ((_I.c.status, status), (_I.c.kind, kind), (_I.c.action, action),
                          (_I.c.key, key)):
        if value is not None:
            query = query.where(column == value)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [dict(r) for r in conn.execute(query).mappings()]


def touching(conn: Connection, *, kind: str, keys: Iterable[str], limit: int = 50
             ) -> list[dict[str, Any]]:
    """The newest runs with an item for one of ``keys`` of ``kind``: each run's fields
    plus ``item`` (that object's item in it)."""
    query = (select(_R, _I.c.action, _I.c.status.label("item_status"), _I.c.changes,
                    _I.c.error.label("item_error"), _I.c.key)
             .join(_I, _I.c.run_id == _R.c.id)
             .where(_I.c.kind == kind, _I.c.key.in_(sorted(set(keys))))
             .order_by(_R.c.id.desc(), _I.c.seq).limit(limit))
    out = []
    for row in conn.execute(query).mappings():
        out.append({**as_json(dict(row)), "item": {
            "kind": kind, "key": row["key"], "action": row["action"],
            "status": row["item_status"], "changes": row["changes"],
            "error": row["item_error"]}})
    return out


def last_finished(conn: Connection, *, direction: str, statuses: Sequence[str]
                  ) -> dict[str, Any] | None:
    """The newest run of ``direction`` that ended in one of ``statuses`` (not a dry run)."""
    row = conn.execute(select(_R).where(
        _R.c.direction == direction, _R.c.status.in_(list(statuses)),
        _R.c.dry_run.is_(False)).order_by(_R.c.id.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)


def recent(conn: Connection, *, limit: int = 50, direction: str | None = None,
           status: str | None = None, mode: str | None = None, source: str | None = None,
           trigger: str | None = None, dry_run: bool | None = None,
           before_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first; each given filter must match exactly; ``before_id`` pages backwards."""
    query = select(_R).order_by(_R.c.id.desc()).limit(limit)
    for column, value in ((_R.c.direction, direction), (_R.c.status, status),
                          (_R.c.mode, mode), (_R.c.source, source), (_R.c.trigger, trigger)):
        if value:
            query = query.where(column == value)
    if dry_run is not None:
        query = query.where(_R.c.dry_run == dry_run)
    if before_id is not None:
        query = query.where(_R.c.id < before_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def last_started(conn: Connection, *, direction: str, trigger: str) -> datetime | None:
    value = conn.execute(select(func.max(_R.c.created_at)).where(
        _R.c.direction == direction, _R.c.trigger == trigger)).scalar()
    return _aware(value) if value else None


def as_json(run: dict[str, Any], run_items: Iterable[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """The contract's run object (``items`` only for the detail view)."""
    out = {
        "id": run["id"], "direction": run["direction"], "mode": run["mode"],
        "source": run["source"], "dry_run": bool(run["dry_run"]), "status": run["status"],
        "trigger": run["trigger"], "counters": {k: int(run["counters"].get(k, 0))
                                                for k in COUNTER_KEYS},
        "created_at": _iso(run["created_at"]), "started_at": _iso(run["started_at"]),
        "finished_at": _iso(run["finished_at"]), "error": run["error"],
        "notes": list(run["notes"] or []),
        "progress": {"done": run["progress_done"], "total": run["progress_total"]},
        "decision": None if not run.get("decision") else {
            "decision": run["decision"], "by": run["decided_by"],
            "at": _iso(run["decided_at"])},
    }
    if run_items is not None:
        out["items"] = [{"kind": i["kind"], "key": i["key"], "action": i["action"],
                         "status": i["status"], "changes": i["changes"], "error": i["error"]}
                        for i in run_items]
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
