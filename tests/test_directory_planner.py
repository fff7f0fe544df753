"""The shared pure planner over canonical records (``directory.planner``), table-tested
with a recording render: decisions, not platform bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, Change, DepartmentRef, Request
from sync_core.directory.planner import (
    Policy,
    Rendered,
    Wording,
    merge_custom,
    plan_department,
    plan_user,
)
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

    def create_department(self, department: Department, parent: Any) -> Rendered:
        return (), (Request("dcreate", {"name": department.name, "parent": parent}),)

    def update_department(self, target_id: str, name: str | None, parent: Any,
                          custom: Mapping[str, Any] | None) -> tuple[Request, ...]:
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
    assert plan_department(Department("r", None, "公司", None, root=True), None, IDS, Policy(),
                           Rec(), key="r") == ()


@pytest.mark.parametrize("actual, policy, action, cause", [
    (tgt(), Policy(), Action.UNCHANGED, None),
    (User("", "uid-9", {"name": "张三"}), Policy(), Action.SKIP, Cause.CONFLICT),
    (User("", "uid-9", {"name": "张三"}), Policy(adopt=True), Action.UNCHANGED, None),
    (User("u2", "uid-9", {"name": "张三"}), Policy(adopt=True), Action.SKIP, Cause.CONFLICT),
])
def test_a_target_user_is_written_only_when_it_is_this_users(
        actual: User, policy: Policy, action: Action, cause: Cause | None) -> None:
    [op] = plan_user(SRC, actual, IDS, policy, Rec(), key="u1")
    assert (op.action, op.cause) == (action, cause)


def test_a_renamed_user_keeps_the_target_user_of_its_old_key() -> None:
    renamed = User("u9", "zs", {"name": "张三"}, renamed_from="u1")
    [op] = plan_user(renamed, tgt(), IDS, Policy(), Rec(), key="u9")
    assert op.cause is None


@pytest.mark.parametrize("actual, policy, action, cause", [
    (User("u1", "zs", managed=False), Policy(delete="delete"), Action.SKIP, Cause.NOT_MANAGED),
    # suspended but told apart from resigned: resign still writes
    (User("u1", "zs", enabled=False, resigned=False), Policy(delete="resign"),
     Action.RESIGN, None),
    (User("u1", "zs", enabled=False, resigned=True), Policy(delete="resign"),
     Action.UNCHANGED, None),
    (User("u1", "zs", enabled=False, resigned=True), Policy(delete="suspend"),
     Action.UNCHANGED, None),
    (User("u1", "zs", enabled=None), Policy(delete="suspend"), Action.SUSPEND, None),
])
def test_user_removal(actual: User, policy: Policy, action: Action,
                      cause: Cause | None) -> None:
    [op] = plan_user(None, actual, IDS, policy, Rec(), key="u1")
    assert (op.action, op.cause) == (action, cause)


@pytest.mark.parametrize("actual, action, cause", [
    (Department("d", "9", "研发", "2", managed=False), Action.SKIP, Cause.NOT_MANAGED),
    (Department("d", "9", "研发", None, root=True), Action.SKIP, Cause.PROTECTED),
    (Department("d", "9", "研发", "2", members=2), Action.SKIP, Cause.BLOCKED),
    (Department("d", "9", "研发", "2", children=1), Action.SKIP, Cause.BLOCKED),
    (Department("d", "9", "研发", "2", members=0, children=0), Action.DELETE, None),
])
def test_only_an_empty_department_of_ours_is_deleted(actual: Department, action: Action,
                                                     cause: Cause | None) -> None:
    [op] = plan_department(None, actual, IDS, Policy(), Rec(), key="d")
    assert (op.action, op.cause) == (action, cause)


def test_custom_data_keeps_the_keys_other_writers_own() -> None:
    changes, value = merge_custom((("ours", "2"),), (("ours", "1"), ("theirs", "x")),
                                  field="data")
    assert changes == [Change("data.ours", "1", "2")]
    assert value == {"ours": "2", "theirs": "x"}
    assert merge_custom((("ours", "2"),), (("ours", 2),), field="data") == ([], None)


# -- user creates and updates: the rules a direction opts into -----------------------------


@pytest.mark.parametrize("desired, policy, cause", [
    (User("u1", "zs", {"name": "张三", "status": "resigned"}), Policy(), Cause.POLICY),
    (User("u1", "zs", {"name": "张三"}), Policy(create_needs=("mobile", "email")),
     Cause.INCOMPLETE),
    (User("u1", "zs", {"name": "张三", "email": ""}), Policy(create_needs=("email",)),
     Cause.INCOMPLETE),  # known empty is not enough
    (User("u1", "zs", {"name": "张三"}, initial=(("username", "zs"),)),
     Policy(create_needs=("username",)), None),
])
def test_a_user_is_not_created_resigned_nor_without_what_the_target_needs(
        desired: User, policy: Policy, cause: Cause | None) -> None:
    [op] = plan_user(desired, None, IDS, policy, Rec(), key="u1")
    assert op.cause is cause
    assert (op.action is Action.CREATE) is (cause is None) and bool(op.requests) is (cause is None)


def test_initial_fields_are_written_by_a_create_only() -> None:
    want = User("u1", "zs", {"name": "张三"}, ("a",), initial=(("username", "zs"),))
    [created] = plan_user(want, None, IDS, Policy(), Rec(), key="u1")
    assert created.requests[0].body["username"] == "zs"
    [op] = plan_user(want, tgt(username="admin-set"), IDS, Policy(), Rec(), key="u1")
    assert op.action is Action.UNCHANGED


@pytest.mark.parametrize("relink, action, changes", [
    (False, Action.UNCHANGED, ()),
    (True, Action.UPDATE, (Change("key", None, "u1"),)),
])
def test_relink_writes_the_source_key_to_an_adopted_target_user(
        relink: bool, action: Action, changes: tuple[Change, ...]) -> None:
    adopted = User("", "uid-9", {"name": "张三"})
    [op] = plan_user(SRC, adopted, IDS, Policy(adopt=True, relink=relink), Rec(), key="u1")
    assert (op.action, op.changes) == (action, changes)
    if relink:
        assert op.requests[0].body["key"] == "u1"


def test_a_users_custom_data_is_merged_into_the_targets() -> None:
    want = User("u1", "zs", {"name": "张三"}, custom=(("ours", "2"), ("new", "n")))
    actual = User("u1", "zs", {"name": "张三"}, custom=(("ours", "1"), ("theirs", "x")))
    [op] = plan_user(want, actual, IDS, Policy(), Rec(), key="u1")
    assert op.changes == (Change("custom.ours", "1", "2"), Change("custom.new", None, "n"))
    assert op.requests[0].body["custom"] == {"ours": "2", "theirs": "x", "new": "n"}
    [same] = plan_user(want, User("u1", "zs", {}, custom=(("ours", "2"), ("new", "n"))),
                       IDS, Policy(), Rec(), key="u1")
    assert same.action is Action.UNCHANGED
