"""The mapping of the upstream direction (WeCom → Authing) as the engine's ``Planner`` port:
the pure planner of ``authing.planner`` and the essences of ``authing.essence`` and
``wecom.essence``, behind the names the engine calls."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sync_core.authing import essence as authing_essence
from sync_core.authing.mapping import (
    department_id_of,
    department_open_id,
    is_synthetic,
    map_department,
    map_user,
)
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.authing.planner import (
    DepartmentIndex,
    count_managed,
    plan_department,
    plan_full,
    plan_user,
)
from sync_core.binding import Binding
from sync_core.directory.operations import Mode, Operation
from sync_core.directory.vocabulary import Kind
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.wecom import essence as wecom_essence
from sync_core.wecom.model import WeComDepartment, WeComUser


class UpstreamPlanner:
    def index(self, ids: Mapping[str, str], source: Mapping[str, Any]) -> DepartmentIndex:
        keyed = {department_id_of(k): v for k, v in ids.items()}
        return DepartmentIndex(authing_ids={k: v for k, v in keyed.items() if k is not None},
                               source={int(k): v for k, v in source.items()})

    def root(self, binding: Binding) -> tuple[str, str]:
        return str(binding.root_wecom_id), binding.root_department_id

    def seed(self, index: DepartmentIndex) -> dict[str, str]:
        return {department_open_id(w): a for w, a in index.authing_ids.items()}

    def plan_user(self, desired: WeComUser | None, actual: AuthingUser | None,
                  binding: Binding, index: DepartmentIndex,
                  key: str) -> tuple[Operation, ...]:
        return plan_user(desired, actual, binding, index, key=key)

    def plan_department(self, desired: WeComDepartment | None,
                        actual: AuthingDepartment | None, binding: Binding,
                        index: DepartmentIndex, key: str) -> tuple[Operation, ...]:
        return plan_department(desired, actual, binding, index, key=key)

    def plan_all(self, source: SourceSnapshot, target: TargetSnapshot, binding: Binding,
                 mode: Mode) -> tuple[Operation, ...]:
        return plan_full(source.users, source.departments, target.users, target.departments,
                         binding, mode)

    def managed(self, target: TargetSnapshot, binding: Binding) -> int:
        return count_managed(target.users, target.departments, binding)

    def user_departments(self, desired: WeComUser | None, actual: AuthingUser | None,
                         binding: Binding) -> tuple[set[str], dict[str, str]]:
        wanted = {str(d) for d in desired.department or ()} if desired else set()
        known: dict[str, str] = {}
        for m in (actual.memberships or ()) if actual else ():
            wecom_id = department_id_of(m.open_department_id)
            if (m.organization_code in (None, binding.organization_code)
                    and wecom_id is not None and not is_synthetic(wecom_id)):
                known[str(wecom_id)] = m.department_id
        return wanted, known

    def parent(self, department: WeComDepartment) -> str | None:
        return str(department.parent_id) if department.parent_id else None  # the root's is 0

    def source_key(self, kind: Kind, record: WeComUser | WeComDepartment) -> str:
        return (record.userid if isinstance(record, WeComUser)
                else department_open_id(record.id))

    def linked_key(self, kind: Kind, record: AuthingUser | AuthingDepartment) -> str | None:
        if isinstance(record, AuthingUser):
            return record.external_id
        return record.open_department_id

    def depths(self, departments: Iterable[WeComDepartment]) -> dict[str, int]:
        parents = {d.id: d.parent_id for d in departments}
        depth: dict[int, int] = {}

        def of(dept_id: int, seen: int = 0) -> int:
            if dept_id in depth:
                return depth[dept_id]
            parent = parents.get(dept_id)
            value = 0 if parent is None or seen > 32 else of(parent, seen + 1) + 1
            depth[dept_id] = value
            return value

        return {department_open_id(d): of(d) for d in parents}

    def essence(self, kind: Kind, desired: Any, actual: Any,
                binding: Binding) -> dict[str, Any] | None:
        if desired is None:
            return None
        if kind is Kind.USER:
            return authing_essence.written_user(map_user(desired, binding.mapping), actual,
                                                binding)
        return authing_essence.written_department(map_department(desired), actual, binding)

    def source_essence(self, kind: Kind, record: Any) -> dict[str, Any] | None:
        if record is None:
            return None
        if kind is Kind.USER:
            return wecom_essence.user(record)
        return wecom_essence.department(record)
