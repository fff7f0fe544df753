"""Run items and counters from operations and outcomes (pure), and operations to/from JSON
so that a blocked run's staged deletes can be applied exactly as they were shown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from sync_core.directory.essence import digest
from sync_core.directory.operations import DESTRUCTIVE, Action, Change, Operation, Request
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.executor import ItemStatus, Outcome
from sync_core.store.links import LinkRow

STAGED = "staged"  # a delete held back by the deletion guard, awaiting approval


def item_of(outcome: Outcome) -> dict[str, Any]:
    op = outcome.op
    error = outcome.error_text
    if op.action is Action.SKIP and op.reason:
        error = error or op.reason
    return {
        "kind": str(op.kind), "key": op.key, "action": str(op.action),
        "status": str(outcome.status),
        "changes": [[c.field, _jsonable(c.old), _jsonable(c.new)] for c in op.changes],
        "error": error, "operation": None, "written": outcome.written is not None,
    }


def failed_row_item(key: str, error: str) -> dict[str, Any]:
    """A source row that could not be read (an address-book row with a bad cell): a user
    item, failed, whose error names the row, the column and the reason."""
    return {"kind": str(Kind.USER), "key": key, "action": str(Action.SKIP),
            "status": str(ItemStatus.FAILED), "changes": [], "error": error,
            "operation": None}


def staged_item(op: Operation) -> dict[str, Any]:
    item = item_of(Outcome(op, ItemStatus.PLANNED))
    item.update(status=STAGED, operation=operation_to_json(op),
                error="held back by the deletion guard: approve the run to apply")
    return item


def count(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The contract's counters. Planned items (dry runs) count as what they would do; a
    failed item that reached the target (``written``) counts as failed and as what it
    wrote: the entity is there."""
    counters: Counter[str] = Counter(dict.fromkeys(
        ("created", "updated", "deleted", "unchanged", "skipped", "failed"), 0))
    for item in items:
        status, action = item["status"], item["action"]
        if status == ItemStatus.FAILED:
            counters["failed"] += 1
            done = _counter(action) if item.get("written") else None
        elif status in (ItemStatus.SKIPPED, STAGED):
            done = "skipped"
        elif status == ItemStatus.UNCHANGED or action == Action.UNCHANGED:
            done = "unchanged"
        else:
            done = _counter(action)
        if done is not None:
            counters[done] += 1
    return dict(counters)


def _counter(action: str) -> str | None:
    if action == Action.CREATE:
        return "created"
    if action in (Action.UPDATE, Action.MOVE):
        return "updated"
    return "deleted" if Action(action) in DESTRUCTIVE else None


def withhold_deletes(ops: Iterable[Operation], reason: str) -> list[Operation]:
    """Turn every destructive operation into a skip carrying ``reason``."""
    return [replace(op, action=Action.SKIP, requests=(), reason=reason, cause=Cause.WITHHELD)
            if op.action in DESTRUCTIVE else op for op in ops]


def operation_to_json(op: Operation) -> dict[str, Any]:
    return {"kind": str(op.kind), "key": op.key, "action": str(op.action),
            "target": op.target, "reason": op.reason,
            "cause": None if op.cause is None else str(op.cause),
            "changes": [[c.field, _jsonable(c.old), _jsonable(c.new)] for c in op.changes],
            "requests": [{"endpoint": r.endpoint, "body": dict(r.body)} for r in op.requests]}


def operation_from_json(data: dict[str, Any]) -> Operation:
    return Operation(
        kind=Kind(data["kind"]), key=str(data["key"]), action=Action(data["action"]),
        target=data.get("target"), reason=data.get("reason"),
        cause=Cause(data["cause"]) if data.get("cause") else None,
        changes=tuple(Change(*c) for c in data.get("changes") or ()),
        requests=tuple(Request(r["endpoint"], r["body"]) for r in data.get("requests") or ()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def written(outcomes: Iterable[Outcome],
            essence: Callable[[str, str], Any]) -> list[LinkRow]:
    """Link rows for the operations that wrote something (applied, or failed after part of
    it reached the target: the target id is known from then on); ``essence``
    answers, for (kind, key), what the target shows after the write (None: deleted), or a
    function of the applied operation for a state only the write decides (an id the
    target gave, a parent resolved on the way)."""
    return [LinkRow(str(o.op.kind), o.op.key, o.op.target, digest(state_after(essence, o.op)))
            for o in outcomes if o.wrote and o.op.writes]


def state_after(essence: Callable[[str, str], Any], op: Operation) -> Any:
    """What the target shows after ``op`` (see ``written``): ``essence``'s answer for its
    (kind, key), or, when that is a function of the operation, its value for ``op``."""
    value = essence(str(op.kind), op.key)
    return value(op) if callable(value) else value
