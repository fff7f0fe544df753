"""Operations: what the planner decides and the executor carries out (pure data).

One ``Operation`` is one run item (kind, key, action) with, in order, the target requests
that apply it (their shape is the target writer's business). Where the target id of a
department is not known at plan time, the body holds a ``DepartmentRef`` and ``needs``
lists the source department key; the executor substitutes the real id with
``resolve_refs``. A body with an unresolved ref does not
serialise to JSON, so it cannot be sent by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple

from sync_core.directory.vocabulary import Cause, Kind


class Action(StrEnum):
    """The run-item actions of the contract; each Operation reports exactly one."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESIGN = "resign"
    SUSPEND = "suspend"
    MOVE = "move"
    UNCHANGED = "unchanged"
    SKIP = "skip"


class Mode(StrEnum):
    CREATE_UPDATE = "create_update"  # never deletes
    DELETE_ONLY = "delete_only"
    FULL = "full"


# What the deletion guard counts: each takes an account or department away from people.
DESTRUCTIVE = frozenset({Action.DELETE, Action.RESIGN, Action.SUSPEND})


class Change(NamedTuple):
    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class DepartmentRef:
    """Stands for the target id of the source department ``open_department_id``."""

    open_department_id: str


@dataclass(frozen=True, slots=True)
class UserRef:
    """Stands for the target id of the user whose source key is ``external_id``, for target
    calls that cannot name a user by its source key, on a user created in the same
    operation; the target writer substitutes it."""

    external_id: str


@dataclass(frozen=True, slots=True)
class Request:
    """One call to the target: ``endpoint`` names it for the target writer."""

    endpoint: str
    body: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Operation:
    """One run item and the target requests that carry it out, in order.

    ``key``: the source key of the user or department. ``target``: the target id acted
    on, when it exists at plan time (or once the write created it). ``changes``: (field,
    old, new) for the report. ``needs``: source department keys the bodies still name by
    DepartmentRef. ``reason``: why a skip was planned, for people; ``cause``: the same as
    an enum, for code. No requests means nothing is written. ``unfit``: values the source
    allows that no target call can take (each a reason naming the value and the limit):
    the requests write everything else, then the operation fails with these reasons.
    """

    kind: Kind
    key: str
    action: Action
    target: str | None = None
    changes: tuple[Change, ...] = ()
    requests: tuple[Request, ...] = ()
    needs: tuple[str, ...] = ()
    reason: str | None = None
    cause: Cause | None = None
    unfit: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return bool(self.requests)


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    blocked: bool
    deletes: int
    managed: int
    reason: str | None = None


class UnresolvedDepartment(LookupError):
    """An operation refers to a source department that has no target id yet."""


def deletion_guard(ops: Iterable[Operation], managed_count: int, threshold_percent: float,
                   threshold_count: int) -> GuardVerdict:
    """A run whose deletes (delete, resign, suspend) exceed either threshold is blocked
    until an operator approves it: a half-empty source must not empty the target."""
    deletes = sum(1 for op in ops if op.action in DESTRUCTIVE)
    if deletes == 0:
        return GuardVerdict(False, 0, managed_count)
    percent = 100.0 if managed_count <= 0 else deletes * 100.0 / managed_count
    reason = None
    if deletes > threshold_count:
        reason = f"{deletes} deletes exceed the limit of {threshold_count}"
    elif percent > threshold_percent:
        reason = (f"{deletes} deletes are {percent:.1f}% of {managed_count} managed objects, "
                  f"above the limit of {threshold_percent:g}%")
    return GuardVerdict(reason is not None, deletes, managed_count, reason)


def resolve_refs(op: Operation, ids: Mapping[str, str]) -> Operation:
    """Replace each DepartmentRef by ``ids[open_department_id]`` (the executor's map of
    departments it has created or looked up). Raises UnresolvedDepartment."""

    def sub(value: Any) -> Any:
        if isinstance(value, DepartmentRef):
            if value.open_department_id not in ids:
                raise UnresolvedDepartment(
                    f"department {value.open_department_id} has no id in the target")
            return ids[value.open_department_id]
        if isinstance(value, Mapping):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return tuple(sub(v) for v in value)
        return value

    requests = tuple(replace(r, body=sub(r.body)) for r in op.requests)
    return replace(op, requests=requests, needs=())
