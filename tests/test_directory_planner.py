"""The shared pure planner over canonical records (``directory.planner``), table-tested
with a recording render: decisions, not platform bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, DepartmentRef, Request
from sync_core.directory.planner import Policy, Rendered, Wording, plan_department, plan_user
from sync_core.directory.vocabulary import Cause


class Rec:
    wording = Wording()

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]:
        return (Request("create", {"id": user.target_id, **fields,
                                   "departments": tuple(departments)}),)

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]:
        return (Request("update", {"id": target_id, **fields, "departments": departments,
                                   "enabled": enabled}),)

    def remove_user(self, actual: User, action: Action) -> Rendered:
        target = str(actual.target_id)
        if action is Action.DELETE:
            return (), (Request("delete", {"id": target}),)
        return (), self.update_user(target, {}, None, False)

    def create_department(self, department: Department, parent: Any) -> tuple[Request, ...]:
        return (Request("dcreate", {"name": department.name, "parent": parent}),)

    def update_department(self, target_id: str, name: str | None,
                          parent: Any) -> tuple[Request, ...]:
        return (Request("dupdate", {"id": target_id, "name": name, "parent": parent}),)

    def remove_department(self, actual: Department) -> Rendered:
        return (), (Request("ddelete", {"id": actual.target_id}),)


IDS = {"a": "2", "b": "3"}
SRC = User("u1", "zs", {"name": "张三", "mobile": "138", "email": None}, ("a",), True)


def tgt(**fields: Any) -> User:
    values = {"name": "张三", "mobile": "138", "email": "z@x.cn", **fields}
    departments = values.pop("departments", ("2",))
    enabled = values.pop("enabled", True)
    return User("u1", "zs", values, departments, enabled)


@pytest.mark.parametrize("desired, actual, policy, action, body", [
    (SRC, None, Policy(), Action.CREATE,
     {"id": "zs", "name": "张三", "mobile": "138", "departments": ("2",)}),
    (SRC, tgt(), Policy(), Action.UNCHANGED, None),
    # email unknown at the source, mobile withheld by the target: unknown is not different
    (SRC, tgt(mobile=None), Policy(), Action.UNCHANGED, None),
    (SRC, tgt(name="李四"), Policy(), Action.UPDATE,
     {"id": "zs", "name": "张三", "departments": None, "enabled": None}),
    (SRC, tgt(name="李四"), Policy(update=False), Action.UNCHANGED, None),
    (SRC, tgt(name="李四"), Policy(ignore=frozenset({"name"})), Action.UNCHANGED, None),
    (SRC, tgt(departments=("3",)), Policy(), Action.UPDATE,
     {"id": "zs", "departments": ["2"], "enabled": None}),
    (SRC, tgt(enabled=False), Policy(), Action.UPDATE,
     {"id": "zs", "departments": None, "enabled": True}),
    (None, tgt(), Policy(delete="delete"), Action.DELETE, {"id": "zs"}),
    (None, tgt(), Policy(delete="suspend"), Action.SUSPEND,
     {"id": "zs", "departments": None, "enabled": False}),
    (None, tgt(), Policy(delete="resign"), Action.RESIGN,
     {"id": "zs", "departments": None, "enabled": False}),
    (None, tgt(), Policy(delete="ignore"), Action.SKIP, None),
    (None, tgt(enabled=False), Policy(delete="resign"), Action.UNCHANGED, None),
])
def test_user_decisions(desired: User | None, actual: User, policy: Policy, action: Action,
                        body: dict[str, Any] | None) -> None:
    [op] = plan_user(desired, actual, IDS, policy, Rec(), key="u1")
    assert op.action is action
    assert (dict(op.requests[0].body) if op.requests else None) == body


def test_a_user_in_a_department_the_target_lacks_names_it_by_ref() -> None:
    want = User("u1", "zs", {"name": "张三"}, ("a", "new"), None)
    [op] = plan_user(want, None, IDS, Policy(), Rec(), key="u1")
    assert op.requests[0].body["departments"] == ("2", DepartmentRef("new"))
    assert op.needs == ("new",)


def test_a_record_with_problems_is_a_skip_without_a_request() -> None:
    [op] = plan_user(SRC, None, IDS, Policy(), Rec(), key="u1", problems=["no name"])
    assert (op.action, op.cause, op.reason, op.requests) == (
        Action.SKIP, Cause.INVALID, "no name", ())


@pytest.mark.parametrize("desired, actual, action, body", [
    (Department("d", None, "研发", "a"), None, Action.CREATE, {"name": "研发", "parent": "2"}),
    (Department("d", None, "研发", "a"), Department("d", "9", "研发", "2"),
     Action.UNCHANGED, None),
    (Department("d", None, "研发部", "a"), Department("d", "9", "研发", "2"), Action.UPDATE,
     {"id": "9", "name": "研发部", "parent": None}),
    (Department("d", None, "研发", "b"), Department("d", "9", "研发", "2"), Action.MOVE,
     {"id": "9", "name": None, "parent": "3"}),
    (None, Department("d", "9", "研发", "2"), Action.DELETE, {"id": "9"}),
])
def test_department_decisions(desired: Department | None, actual: Department | None,
                              action: Action, body: dict[str, Any] | None) -> None:
    [op] = plan_department(desired, actual, IDS, Policy(), Rec(), key="d")
    assert op.action is action
    assert (dict(op.requests[0].body) if op.requests else None) == body


def test_a_root_is_never_written() -> None:
    assert plan_department(Department("r", None, "公司", None), None, IDS, Policy(), Rec(),
                           key="r") == ()
