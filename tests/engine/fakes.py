"""In-memory fakes of a direction's ports, for unit tests of the engine.

A small platform of its own: users (key, name, department) and departments (key, name,
parent) on the source side; the target holds the same records under its own ids ("t-…").
The planner is a plain one over these records, so the tests exercise the engine (what it
reads, in which order it writes, how it settles), not a platform's rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sync_core.binding import Binding
from sync_core.directory.operations import (
    DESTRUCTIVE,
    Action,
    Change,
    DepartmentRef,
    Mode,
    Operation,
    Request,
)
from sync_core.directory.vocabulary import Cause, Direction, Kind
from sync_core.engine.ports import Hints, Ports, ReadFrom, SourceSnapshot, TargetSnapshot
from sync_core.errors import (
    BadRequestError,
    NotFoundError,
    PermanentError,
    StopSync,
    SyncError,
)


@dataclass(frozen=True)
class User:
    key: str
    name: str
    department: str | None = None


@dataclass(frozen=True)
class Department:
    key: str
    name: str
    parent: str | None = None


@dataclass
class Stored:
    """A target record: the source record it mirrors, under the target's id."""

    target_id: str
    record: Any


@dataclass
class FakeSource:
    users: dict[str, User] = field(default_factory=dict)
    departments: dict[str, Department] = field(default_factory=dict)
    reads: list[tuple[str, str]] = field(default_factory=list)
    problems: tuple[str, ...] = ()
    cannot_say: set[str] = field(default_factory=set)  # keys ``present`` cannot answer for

    def hints(self, kind: Kind, payloads: Sequence[Mapping[str, Any]]) -> Hints:
        renamed = next((p["renamed_to"] for p in reversed(payloads) if p.get("renamed_to")),
                       None)
        return Hints(tuple(payloads), renamed, any(p.get("created") for p in payloads))

    async def read_user(self, key: str, original: str, hints: Hints) -> tuple[Any, ReadFrom]:
        self.reads.append(("user", key))
        return self.users.get(key), ReadFrom.API

    async def read_department(self, key: str, hints: Hints) -> tuple[Any, ReadFrom]:
        self.reads.append(("department", key))
        return self.departments.get(key), ReadFrom.API

    async def department(self, key: str) -> Any:
        self.reads.append(("department", key))
        return self.departments.get(key)

    async def snapshot(self) -> SourceSnapshot:
        return SourceSnapshot(tuple(self.users.values()), tuple(self.departments.values()),
                              self.problems)

    async def present(self, kind: Kind, key: str, target: str | None = None) -> bool:
        if key in self.cannot_say:
            raise PermanentError(f"{key}: the source cannot say")
        return key in (self.users if kind is Kind.USER else self.departments)


@dataclass
class FakeTarget:
    users: dict[str, Stored] = field(default_factory=dict)
    departments: dict[str, Stored] = field(default_factory=dict)
    reads: list[tuple[str, Any]] = field(default_factory=list)
    bootstraps: int = 0
    forgotten: int = 0  # runs that told it to drop its caches

    async def bootstrap(self, binding: Binding) -> Binding:
        self.bootstraps += 1
        return replace(binding, root_department_id="t-root")

    async def user(self, keys: Sequence[str], binding: Binding) -> Any:
        self.reads.append(("user", tuple(keys)))
        return next((self.users[k] for k in keys if k in self.users), None)

    async def colliding_user(self, desired: Any, binding: Binding) -> Any:
        return None

    async def department(self, key: str, binding: Binding) -> Any:
        self.reads.append(("department", key))
        return self.departments.get(key)

    async def department_id(self, key: str, binding: Binding) -> str | None:
        self.reads.append(("department_id", key))
        stored = self.departments.get(key)
        return stored.target_id if stored else None

    async def write_back_echo(self, kind: Kind, key: str, hints: Hints) -> bool:
        return False  # this fake target writes nothing back to its source

    async def snapshot(self, binding: Binding) -> TargetSnapshot:
        return TargetSnapshot(tuple(self.users.values()), tuple(self.departments.values()))

    def forget(self) -> None:
        self.forgotten += 1


class FakeWriter:
    """Applies requests to ``target``; ``fail`` maps a source key to the error its writes
    raise. Every call is logged in ``calls`` as (name, keys)."""

    remote = "fake"
    concurrency = 4

    def __init__(self, target: FakeTarget, *, batch_limit: int = 3) -> None:
        self.target = target
        self.batch_limit = batch_limit
        self.fail: dict[str, SyncError] = {}
        self.batch_error: SyncError | None = None
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self._ids = 0

    def batchable(self, op: Operation) -> bool:
        return (op.kind is Kind.USER and op.action is Action.CREATE
                and op.requests[0].endpoint == "create")

    async def write(self, request: Request, ids: MutableMapping[str, str],
                    made: MutableMapping[str, str]) -> None:
        body = dict(request.body)
        key = str(body["key"])
        self.calls.append((request.endpoint, (key,)))
        if key in self.fail:
            raise self.fail[key]
        if isinstance(body.get("parent_id"), DepartmentRef):
            raise AssertionError("an unresolved ref reached the writer")
        store = self.target.users if body["kind"] == Kind.USER else self.target.departments
        if request.endpoint == "delete":
            store.pop(key, None)
        elif request.endpoint == "create":
            self._ids += 1
            store[key] = Stored(f"t-{self._ids}", body["record"])
            made[key] = store[key].target_id
            if body["kind"] == Kind.DEPARTMENT:
                ids[key] = store[key].target_id
        else:
            if body["kind"] == Kind.DEPARTMENT:
                self._refuse_cycle(key, body["record"].parent)
            store[key].record = body["record"]

    def _refuse_cycle(self, key: str, parent: str | None) -> None:
        """As both real targets do: no department under itself or its descendant."""
        while parent is not None:
            if parent == key:
                raise BadRequestError("cannot move a department under its descendant")
            stored = self.target.departments.get(parent)
            parent = stored.record.parent if stored is not None else None

    async def create_batch(self, ops: Sequence[Operation]) -> list[tuple[int, str | None]]:
        self.calls.append(("create-batch", tuple(op.key for op in ops)))
        if self.batch_error is not None:
            return [(0, None)] * len(ops)
        for op in ops:
            self._ids += 1
            self.target.users[op.key] = Stored(f"t-{self._ids}",
                                               op.requests[0].body["record"])
        return [(1, self.target.users[op.key].target_id) for op in ops]

    async def look_up(self, keys: Sequence[str], ids: MutableMapping[str, str]) -> None:
        for key in keys:
            stored = self.target.departments.get(key)
            if stored is not None:
                ids[key] = stored.target_id


class FakePlanner:
    """Create, update (name or department), delete; a user whose department is unknown to
    the target gets a ref; a department with members is blocked; key "taken" conflicts."""

    def index(self, ids: Mapping[str, str], source: Mapping[str, Any]) -> dict[str, Any]:
        return {"ids": dict(ids), "source": dict(source)}

    def root(self, binding: Binding) -> tuple[str, str]:
        return "root", binding.root_department_id

    def seed(self, index: dict[str, Any]) -> dict[str, str]:
        return dict(index["ids"])

    def plan_user(self, desired: User | None, actual: Stored | None, binding: Binding,
                  index: dict[str, Any], key: str) -> tuple[Operation, ...]:
        if key == "taken":
            return (Operation(Kind.USER, key, Action.SKIP, reason="conflict: not ours",
                              cause=Cause.CONFLICT),)
        missing = index["source"]
        depth = self.depths(missing.values())
        creates = tuple(self._create_department(missing[k], index)
                        for k in sorted(missing, key=depth.__getitem__))
        return (*creates, self._user(desired, actual, key, index))

    def plan_department(self, desired: Department | None, actual: Stored | None,
                        binding: Binding, index: dict[str, Any],
                        key: str) -> tuple[Operation, ...]:
        if desired is None and actual is not None and key == "busy":
            return (Operation(Kind.DEPARTMENT, key, Action.SKIP, actual.target_id,
                              reason="blocked: members left", cause=Cause.BLOCKED),)
        return (self._department(desired, actual, key, index),)

    def plan_all(self, source: SourceSnapshot, target: TargetSnapshot, binding: Binding,
                 mode: Mode) -> tuple[Operation, ...]:
        index = self.index({k: s.target_id for k, s in _by_key(target.departments).items()},
                           {})
        actual_users, actual_depts = _by_key(target.users), _by_key(target.departments)
        depth = self.depths(source.departments)
        ops: list[Operation] = []
        if mode is not Mode.DELETE_ONLY:
            for dept in sorted(source.departments, key=lambda d: depth[d.key]):
                ops.append(self._department(dept, actual_depts.get(dept.key), dept.key, index))
            for user in source.users:
                ops.append(self._user(user, actual_users.get(user.key), user.key, index))
        if mode is not Mode.CREATE_UPDATE:
            wanted = {u.key for u in source.users}
            ops += [self._user(None, s, k, index) for k, s in actual_users.items()
                    if k not in wanted]
            present = {d.key for d in source.departments}
            ops += [self._department(None, s, k, index) for k, s in actual_depts.items()
                    if k not in present]
        return tuple(ops)

    def managed(self, target: TargetSnapshot, binding: Binding) -> int:
        return len(target.users) + len(target.departments)

    def user_departments(self, desired: User | None, actual: Stored | None,
                         binding: Binding) -> tuple[set[str], dict[str, str]]:
        return ({desired.department} if desired and desired.department else set()), {}

    def parent(self, department: Department) -> str | None:
        return department.parent

    def source_key(self, kind: Kind, record: Any) -> str:
        return str(record.key)

    def linked_key(self, kind: Kind, record: Stored) -> str | None:
        return str(record.record.key)

    def depths(self, departments: Iterable[Department]) -> dict[str, int]:
        parents = {d.key: d.parent for d in departments}

        def depth(key: str) -> int:
            parent = parents.get(key)
            return 0 if parent is None or parent not in parents else depth(parent) + 1

        return {key: depth(key) for key in parents}

    def essence(self, kind: Kind, desired: Any, actual: Any, binding: Binding) -> Any:
        return None if desired is None else {"name": desired.name}

    def source_essence(self, kind: Kind, record: Any) -> Any:
        return None if record is None else {"name": record.name}

    # -- helpers ---------------------------------------------------------------------

    def _user(self, desired: User | None, actual: Stored | None, key: str,
              index: dict[str, Any]) -> Operation:
        if desired is None:
            if actual is None:
                return Operation(Kind.USER, key, Action.UNCHANGED)
            return Operation(Kind.USER, key, Action.DELETE, actual.target_id, (),
                             (Request("delete", {"kind": Kind.USER, "key": key}),))
        if actual is not None and actual.record == desired:
            return Operation(Kind.USER, key, Action.UNCHANGED, actual.target_id)
        dept = desired.department
        needs = (dept,) if dept and dept not in index["ids"] else ()
        body = {"kind": Kind.USER, "key": key, "record": desired,
                "department_id": DepartmentRef(dept) if needs else index["ids"].get(dept)}
        if actual is None:
            return Operation(Kind.USER, key, Action.CREATE, None,
                             (Change("name", None, desired.name),),
                             (Request("create", {"kind": Kind.USER, "key": key,
                                                 "record": desired}),
                              Request("set-department", body)), needs)
        return Operation(Kind.USER, key, Action.UPDATE, actual.target_id,
                         (Change("name", actual.record.name, desired.name),),
                         (Request("update", body),), needs)

    def _department(self, desired: Department | None, actual: Stored | None, key: str,
                    index: dict[str, Any]) -> Operation:
        if desired is None:
            if actual is None:
                return Operation(Kind.DEPARTMENT, key, Action.UNCHANGED)
            return Operation(Kind.DEPARTMENT, key, Action.DELETE, actual.target_id, (),
                             (Request("delete", {"kind": Kind.DEPARTMENT, "key": key}),))
        if actual is not None and actual.record == desired:
            return Operation(Kind.DEPARTMENT, key, Action.UNCHANGED, actual.target_id)
        if actual is None:
            return self._create_department(desired, index)
        moved = actual.record.parent != desired.parent
        return Operation(Kind.DEPARTMENT, key, Action.MOVE if moved else Action.UPDATE,
                         actual.target_id, (),
                         (Request("update", {"kind": Kind.DEPARTMENT, "key": key,
                                             "record": desired}),))

    def _create_department(self, desired: Department, index: dict[str, Any]) -> Operation:
        return Operation(Kind.DEPARTMENT, desired.key, Action.CREATE, None,
                         (Change("name", None, desired.name),),
                         (Request("create", {"kind": Kind.DEPARTMENT, "key": desired.key,
                                             "record": desired}),))


def _by_key(stored: Iterable[Stored]) -> dict[str, Stored]:
    return {s.record.key: s for s in stored}


@dataclass
class Direction_:
    source: FakeSource
    target: FakeTarget
    writer: FakeWriter
    ports: Ports


def fake_direction(*, batch_limit: int = 3) -> Direction_:
    source, target = FakeSource(), FakeTarget()
    writer = FakeWriter(target, batch_limit=batch_limit)
    ports = Ports(Direction.UPSTREAM, "Source", "Target", source, target, writer,
                  FakePlanner(), Binding())
    return Direction_(source, target, writer, ports)


def destructive(ops: Iterable[Operation]) -> list[Operation]:
    return [op for op in ops if op.action in DESTRUCTIVE]


__all__ = ["Department", "FakeWriter", "NotFoundError", "StopSync", "Stored", "User",
           "destructive", "fake_direction"]
