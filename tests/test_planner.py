"""Planner rules, as tables of cases, plus the property that an in-sync state plans to nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.authing.mapping import MappingPolicy, UsernameSource, map_department, map_user
from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.authing.planner import (
    DESTRUCTIVE,
    Action,
    Change,
    DepartmentIndex,
    DepartmentRef,
    Kind,
    Mode,
    Operation,
    UnresolvedDepartment,
    count_managed,
    deletion_guard,
    match_renames,
    plan_department,
    plan_full,
    plan_user,
    resolve_refs,
)
from sync_core.binding import Binding
from sync_core.settings import Settings, UserDeletePolicy
from sync_core.wecom.model import WeComDepartment, WeComUser

POLICY = Binding(organization_code="wecom", root_department_id="root-id")


def adept(wecom_id: int, parent: str | None = "root-id", name: str | None = None,
          **kw: Any) -> AuthingDepartment:
    """An Authing department we manage, in step with WeCom department ``wecom_id``."""
    parent_wecom = "1" if parent == "root-id" else (parent or "")[1:]
    custom = (("wechatwork_department_id", str(wecom_id)),
              ("wechatwork_parent_department_id", parent_wecom))
    return AuthingDepartment(department_id=f"a{wecom_id}", open_department_id=str(wecom_id),
                             name=name or f"D{wecom_id}", parent_department_id=parent,
                             organization_code="wecom", custom_data=custom, **kw)


ROOT = AuthingDepartment("root-id", "1", "Corp", None, "wecom")
DEPTS = (ROOT, adept(2), adept(3, "a2"))
INDEX = DepartmentIndex.build(DEPTS, POLICY)


def member(wecom_id: int, leader: bool = False, main: bool = False) -> AuthingMembership:
    did = "root-id" if wecom_id == 1 else f"a{wecom_id}"
    return AuthingMembership(did, str(wecom_id), "wecom", leader, main)


ZS = WeComUser("zs", name="张三", department=(2, 3), main_department=2,
               is_leader_in_dept=(1, 0), mobile="+86 13800000000", gender=1,
               email="zs@example.com", status=1, avatar="http://a", position="PM")
ZS_AUTHING = AuthingUser(
    user_id="uid-zs", external_id="zs", username="zs", name="张三", phone="13800000000",
    phone_country_code="+86", email="zs@example.com", gender="M", status="Activated",
    photo="http://a",
    custom_data=(("wechatwork_department_ids", "2,3"), ("wechatwork_user_id", "zs")),
    memberships=(member(2, leader=True, main=True), member(3)),
)


def only(ops: tuple[Operation, ...]) -> Operation:
    assert len(ops) == 1, ops
    return ops[0]


def body(op: Operation, endpoint: str) -> dict[str, Any]:
    found = [r.body for r in op.requests if r.endpoint == endpoint]
    assert found, f"no {endpoint} in {op.requests}"
    return dict(found[0])


# -- users: create -------------------------------------------------------------------------


def test_create_user_with_memberships() -> None:
    op = only(plan_user(ZS, None, POLICY, INDEX))
    assert (op.kind, op.key, op.action, op.target, op.needs) == (
        Kind.USER, "zs", Action.CREATE, None, ())
    assert [r.endpoint for r in op.requests] == ["create-user", "set-user-departments"]
    assert body(op, "create-user") == {
        "externalId": "zs", "username": "zs", "name": "张三", "phone": "13800000000",
        "phoneCountryCode": "+86", "email": "zs@example.com", "gender": "M",
        "status": "Activated", "photo": "http://a",
        "customData": {"wechatwork_user_id": "zs", "wechatwork_department_ids": "2,3"}}
    assert body(op, "set-user-departments") == {
        "userId": "zs", "options": {"userIdType": "external_id"}, "departments": (
            {"departmentId": "a2", "isLeader": True, "isMainDepartment": True},
            {"departmentId": "a3", "isLeader": False, "isMainDepartment": False})}
    assert Change("departments", None, "2[leader,main];3") in op.changes


@pytest.mark.parametrize(("user", "mapping", "reason"), [
    (WeComUser("zs", name="Z", status=5), MappingPolicy(), "resigned in WeCom"),
    (WeComUser("zs", name="Z"), MappingPolicy(username_source=UsernameSource.NONE),
     "cannot create"),
    (WeComUser("zs", name="Z", alias=None),
     MappingPolicy(username_source=UsernameSource.ALIAS), "cannot create"),
])
def test_create_user_skipped(user: WeComUser, mapping: MappingPolicy, reason: str) -> None:
    op = only(plan_user(user, None, replace(POLICY, mapping=mapping), INDEX))
    assert op.action is Action.SKIP and not op.writes
    assert op.reason is not None and op.reason.startswith(reason)


@pytest.mark.parametrize(("user", "username", "phone"), [
    (WeComUser("zs", mobile="13900000000"), None, "13900000000"),  # phone is enough
    (WeComUser("zs", alias="jack"), "jack", None),
])
def test_create_user_identifiers(user: WeComUser, username: str | None,
                                 phone: str | None) -> None:
    mapping = MappingPolicy(username_source=(
        UsernameSource.NONE if user.alias is None else UsernameSource.ALIAS))
    op = only(plan_user(user, None, replace(POLICY, mapping=mapping), INDEX))
    created = body(op, "create-user")
    assert (created.get("username"), created.get("phone")) == (username, phone)


def test_missing_departments_are_created_first() -> None:
    source = (WeComDepartment(4, "Four", 2), WeComDepartment(5, "Five", 4))
    index = DepartmentIndex.build(DEPTS, POLICY, source)
    user = WeComUser("ls", name="李四", department=(5, 9), main_department=5)
    ops = plan_user(user, None, POLICY, index)
    assert [(o.kind, o.key, o.action) for o in ops] == [
        (Kind.DEPARTMENT, "4", Action.CREATE), (Kind.DEPARTMENT, "5", Action.CREATE),
        (Kind.USER, "ls", Action.CREATE)]
    assert body(ops[0], "create-department")["parentDepartmentId"] == "a2"
    assert body(ops[1], "create-department")["parentDepartmentId"] == DepartmentRef("4")
    assert ops[1].needs == ("4",)
    assert ops[2].needs == ("5", "9")  # 9 is unknown everywhere: left to the executor
    items = body(ops[2], "set-user-departments")["departments"]
    assert [i["departmentId"] for i in items] == [DepartmentRef("5"), DepartmentRef("9")]


# -- users: update -------------------------------------------------------------------------


def test_in_sync_user_is_unchanged_with_no_writes() -> None:
    op = only(plan_user(ZS, ZS_AUTHING, POLICY, INDEX))
    assert (op.action, op.target, op.requests, op.changes) == (
        Action.UNCHANGED, "uid-zs", (), ())


@pytest.mark.parametrize("trimmed", [
    pytest.param(WeComUser("zs"), id="id-only"),
    pytest.param(WeComUser("zs", department=(2, 3)), id="ids-and-departments"),
    pytest.param(WeComUser("zs", mobile=None, email=None, avatar=None, gender=None),
                 id="withheld"),
])
def test_trimmed_event_clears_nothing(trimmed: WeComUser) -> None:
    op = only(plan_user(trimmed, ZS_AUTHING, POLICY, INDEX))
    assert op.action is Action.UNCHANGED and not op.writes


@pytest.mark.parametrize(("change", "expected"), [
    ({"name": "张三丰"}, {"name": "张三丰"}),
    ({"mobile": "+852 61234567"}, {"phone": "61234567", "phoneCountryCode": "+852"}),
    ({"mobile": "13900000000"}, {"phone": "13900000000", "phoneCountryCode": "+86"}),
    ({"mobile": ""}, {"phone": None}),
    ({"email": "new@example.com"}, {"email": "new@example.com"}),
    ({"email": ""}, {"email": None}),
    ({"gender": 2}, {"gender": "F"}),
    ({"gender": 0}, {"gender": "U"}),
    ({"status": 2}, {"status": "Suspended"}),
    ({"status": 5}, {"status": "Resigned"}),
    ({"avatar": "http://b"}, {"photo": "http://b"}),
])
def test_update_only_changed_fields(change: dict, expected: dict) -> None:
    op = only(plan_user(replace(ZS, **change), ZS_AUTHING, POLICY, INDEX))
    assert op.action is Action.UPDATE
    assert [r.endpoint for r in op.requests] == ["update-user"]
    assert body(op, "update-user") == {"userId": "uid-zs", **expected}


def test_phone_country_code_defaults_when_authing_left_it_empty() -> None:
    actual = replace(ZS_AUTHING, phone_country_code=None)
    assert only(plan_user(ZS, actual, POLICY, INDEX)).action is Action.UNCHANGED


def test_custom_data_is_merged_not_replaced() -> None:
    policy = replace(POLICY, mapping=MappingPolicy(custom_fields=(("position", "title"),)))
    actual = replace(ZS_AUTHING, custom_data=(*(ZS_AUTHING.custom_data or ()),
                                              ("other", "keep"), ("title", "Dev")))
    op = only(plan_user(ZS, actual, policy, INDEX))
    assert op.changes == (Change("customData.title", "Dev", "PM"),)
    assert body(op, "update-user")["customData"] == {
        "other": "keep", "title": "PM", "wechatwork_user_id": "zs",
        "wechatwork_department_ids": "2,3"}


def test_extension_fields_are_written_when_missing() -> None:
    op = only(plan_user(ZS, replace(ZS_AUTHING, custom_data=()), POLICY, INDEX))
    assert {c.field for c in op.changes} == {
        "customData.wechatwork_user_id", "customData.wechatwork_department_ids"}


FOREIGN = AuthingMembership("other-d", "77", "other-org", False, False)


@pytest.mark.parametrize(("user", "actual", "expected"), [
    pytest.param(  # leader moves from 2 to 3
        replace(ZS, is_leader_in_dept=(0, 1)), ZS_AUTHING.memberships,
        [("a2", False, True), ("a3", True, False)], id="leader-change"),
    pytest.param(
        replace(ZS, main_department=3), ZS_AUTHING.memberships,
        [("a2", True, False), ("a3", False, True)], id="main-change"),
    pytest.param(  # flags unknown: keep Authing's, add the new department
        WeComUser("zs", department=(2, 3, 1)), ZS_AUTHING.memberships,
        [("a2", True, True), ("a3", False, False), ("root-id", False, False)],
        id="flags-unknown-keep-actual"),
    pytest.param(
        WeComUser("zs", department=(3,)), ZS_AUTHING.memberships,
        [("a3", False, True)], id="left-main-department-first-becomes-main"),
    pytest.param(
        WeComUser("zs", department=(2, 3), is_leader_in_dept=(1, 0)),
        (member(2, leader=True, main=True), member(3), FOREIGN),
        None, id="foreign-membership-alone-is-no-change"),
    pytest.param(
        WeComUser("zs", department=(2,), main_department=2),
        (member(2, leader=True, main=True), member(3), FOREIGN),
        [("a2", True, True), ("other-d", False, False)], id="foreign-membership-kept"),
    pytest.param(
        WeComUser("zs", department=()), ZS_AUTHING.memberships, [], id="removed-from-all"),
    pytest.param(  # read with departmentIds only: leader flag unknown, treated as not leader
        replace(ZS, is_leader_in_dept=(0, 0)),
        (AuthingMembership("a2", is_main=True), AuthingMembership("a3", is_main=False)),
        None, id="ids-only-read"),
])
def test_memberships(user: WeComUser, actual: tuple[AuthingMembership, ...],
                     expected: list[tuple[str, bool, bool]] | None) -> None:
    op = only(plan_user(user, replace(ZS_AUTHING, memberships=actual), POLICY, INDEX))
    sets = [r for r in op.requests if r.endpoint == "set-user-departments"]
    if expected is None:
        assert not sets
        return
    assert op.action is Action.UPDATE
    assert sets[0].body["userId"] == "uid-zs"
    assert [(i["departmentId"], i["isLeader"], i["isMainDepartment"])
            for i in sets[0].body["departments"]] == expected


def test_rename_follows_without_duplicate() -> None:
    renamed = replace(ZS, userid="zhangsan", renamed_from="zs")
    ops = plan_user(renamed, ZS_AUTHING, POLICY, INDEX)
    op = only(ops)
    assert (op.action, op.key, op.target) == (Action.UPDATE, "zhangsan", "uid-zs")
    assert body(op, "update-user") == {
        "userId": "uid-zs", "externalId": "zhangsan", "username": "zhangsan",
        "customData": {"wechatwork_user_id": "zhangsan", "wechatwork_department_ids": "2,3"}}


def test_rename_keeps_a_username_an_admin_chose() -> None:
    renamed = replace(ZS, userid="zhangsan", renamed_from="zs")
    op = only(plan_user(renamed, replace(ZS_AUTHING, username="zhang.san"), POLICY, INDEX))
    assert "username" not in body(op, "update-user")


def test_rename_already_applied_is_unchanged() -> None:
    renamed = replace(ZS, userid="zhangsan", renamed_from="zs")
    actual = replace(ZS_AUTHING, external_id="zhangsan", username="zhangsan", custom_data=(
        ("wechatwork_department_ids", "2,3"), ("wechatwork_user_id", "zhangsan")))
    assert only(plan_user(renamed, actual, POLICY, INDEX)).action is Action.UNCHANGED


# -- users: ownership ----------------------------------------------------------------------


UNMANAGED = replace(ZS_AUTHING, user_id="uid-x", external_id=None, custom_data=(),
                    memberships=())


@pytest.mark.parametrize(("actual", "adopt", "action", "reason"), [
    (UNMANAGED, False, Action.SKIP, "conflict: unmanaged Authing user uid-x"),
    (UNMANAGED, True, Action.UPDATE, None),
    (replace(ZS_AUTHING, external_id="someone"), False, Action.SKIP,
     "conflict: Authing user uid-zs belongs to externalId 'someone'"),
    (replace(ZS_AUTHING, external_id="someone"), True, Action.SKIP,
     "conflict: Authing user uid-zs belongs to externalId 'someone'"),
])
def test_ownership(actual: AuthingUser, adopt: bool, action: Action,
                   reason: str | None) -> None:
    op = only(plan_user(ZS, actual, replace(POLICY, adopt_existing=adopt), INDEX))
    assert op.action is action
    assert (op.reason or "").startswith(reason or "")
    if action is Action.UPDATE:
        assert Change("externalId", None, "zs") in op.changes
        assert body(op, "update-user")["externalId"] == "zs"


# -- users: delete -------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "status", "action", "endpoint", "extra"), [
    (UserDeletePolicy.RESIGN, "Activated", Action.RESIGN, "resign-user", {}),
    (UserDeletePolicy.RESIGN, "Resigned", Action.UNCHANGED, None, {}),
    (UserDeletePolicy.SUSPEND, "Activated", Action.SUSPEND, "update-user",
     {"status": "Suspended"}),
    (UserDeletePolicy.SUSPEND, "Suspended", Action.UNCHANGED, None, {}),
    (UserDeletePolicy.SUSPEND, "Resigned", Action.UNCHANGED, None, {}),
    (UserDeletePolicy.DELETE, "Activated", Action.DELETE, "delete-users-batch", {}),
    (UserDeletePolicy.IGNORE, "Activated", Action.SKIP, None, {}),
])
def test_delete_policies(rule: UserDeletePolicy, status: str, action: Action,
                         endpoint: str | None, extra: dict) -> None:
    actual = replace(ZS_AUTHING, status=status)
    op = only(plan_user(None, actual, replace(POLICY, user_delete_policy=rule), INDEX))
    assert (op.action, op.key, op.target) == (action, "zs", "uid-zs")
    assert [r.endpoint for r in op.requests] == ([endpoint] if endpoint else [])
    if endpoint == "delete-users-batch":
        assert body(op, endpoint) == {"userIds": ("uid-zs",)}
    elif endpoint:
        assert body(op, endpoint) == {"userId": "uid-zs", **extra}


@pytest.mark.parametrize("actual", [
    UNMANAGED,
    # someone else's externalId: not our extension field, no department of ours
    replace(ZS_AUTHING, custom_data=(), memberships=(FOREIGN,)),
])
def test_delete_leaves_users_we_do_not_manage(actual: AuthingUser) -> None:
    op = only(plan_user(None, actual, POLICY, INDEX))
    assert op.action is Action.SKIP and not op.writes


def test_delete_of_unknown_user() -> None:
    assert plan_user(None, None, POLICY, INDEX) == ()
    assert only(plan_user(None, None, POLICY, INDEX, key="ghost")) == Operation(
        Kind.USER, "ghost", Action.UNCHANGED)


# -- departments ---------------------------------------------------------------------------


@pytest.mark.parametrize(("desired", "actual", "action", "body_", "needs"), [
    pytest.param(WeComDepartment(4, "Four", 2), None, Action.CREATE, {
        "organizationCode": "wecom", "name": "Four", "parentDepartmentId": "a2",
        "openDepartmentId": "4", "customData": {"wechatwork_department_id": "4",
                                                "wechatwork_parent_department_id": "2"}},
        (), id="create-under-existing-parent"),
    pytest.param(WeComDepartment(4, "Four", 1), None, Action.CREATE, {
        "organizationCode": "wecom", "name": "Four", "parentDepartmentId": "root-id",
        "openDepartmentId": "4", "customData": {"wechatwork_department_id": "4",
                                                "wechatwork_parent_department_id": "1"}},
        (), id="create-under-root"),
    pytest.param(WeComDepartment(4, "Four", 8), None, Action.CREATE, {
        "organizationCode": "wecom", "name": "Four", "parentDepartmentId": DepartmentRef("8"),
        "openDepartmentId": "4", "customData": {"wechatwork_department_id": "4",
                                                "wechatwork_parent_department_id": "8"}},
        ("8",), id="create-under-pending-parent"),
    pytest.param(WeComDepartment(3, "Renamed", 2), adept(3, "a2"), Action.UPDATE, {
        "organizationCode": "wecom", "departmentId": "a3", "name": "Renamed"},
        (), id="rename"),
    pytest.param(WeComDepartment(3, None, 1), adept(3, "a2"), Action.MOVE, {
        "organizationCode": "wecom", "departmentId": "a3", "parentDepartmentId": "root-id",
        "customData": {"wechatwork_department_id": "3",
                       "wechatwork_parent_department_id": "1"}},
        (), id="move-name-unknown"),
    pytest.param(WeComDepartment(3, "D3", 9), adept(3, "a2"), Action.MOVE, {
        "organizationCode": "wecom", "departmentId": "a3", "parentDepartmentId": DepartmentRef("9"),
        "customData": {"wechatwork_department_id": "3",
                       "wechatwork_parent_department_id": "9"}},
        ("9",), id="move-under-pending-parent"),
    pytest.param(WeComDepartment(3, "D3", 2), adept(3, "a2"), Action.UNCHANGED, None, (),
                 id="unchanged"),
    pytest.param(WeComDepartment(3), adept(3, "a2"), Action.UNCHANGED, None, (),
                 id="trimmed-unchanged"),
    pytest.param(None, adept(3, "a2", members_count=0, has_children=False), Action.DELETE, {
        "organizationCode": "wecom", "departmentId": "a3"}, (), id="delete-empty"),
])
def test_plan_department(desired: WeComDepartment | None, actual: AuthingDepartment | None,
                         action: Action, body_: dict | None, needs: tuple) -> None:
    op = only(plan_department(desired, actual, POLICY, INDEX))
    assert (op.kind, op.action, op.needs) == (Kind.DEPARTMENT, action, needs)
    if body_ is None:
        assert not op.writes
    else:
        assert len(op.requests) == 1 and dict(op.requests[0].body) == body_


@pytest.mark.parametrize(("desired", "actual", "reason"), [
    (None, adept(3, "a2", members_count=2, has_children=False),
     "blocked: department is not empty (2 members"),
    (None, adept(3, "a2", members_count=0, has_children=True),
     "blocked: department is not empty (0 members, 1 child"),
    (None, ROOT, "the organization root"),
    (None, AuthingDepartment("x", None, "Manual", "root-id", "wecom"), "not managed"),
    (None, replace(adept(3), organization_code="other"), "not managed"),
    (WeComDepartment(4, None, 2), None, "department name unknown"),
    (WeComDepartment(4, "Four"), None, "parent department unknown"),
    (WeComDepartment(4, "Four", 2), adept(5), "conflict: Authing department a5"),
])
def test_plan_department_skips(desired: WeComDepartment | None,
                               actual: AuthingDepartment | None, reason: str) -> None:
    op = only(plan_department(desired, actual, POLICY, INDEX))
    assert op.action is Action.SKIP and not op.writes
    assert op.reason is not None and op.reason.startswith(reason)


def test_root_department_is_never_planned() -> None:
    op = only(plan_department(WeComDepartment(1, "Corp", 0), ROOT, POLICY, INDEX))
    assert (op.action, op.target) == (Action.UNCHANGED, "root-id")


# -- full reconcile ------------------------------------------------------------------------


def managed(userid: str, *depts: int, status: str = "Activated") -> AuthingUser:
    return AuthingUser(
        user_id=f"uid-{userid}", external_id=userid, username=userid, name=userid,
        email=f"{userid}@example.com", status=status,
        custom_data=(("wechatwork_department_ids", ",".join(map(str, depts))),
                     ("wechatwork_user_id", userid)),
        memberships=tuple(member(d, main=i == 0) for i, d in enumerate(depts)))


def wuser(userid: str, *depts: int) -> WeComUser:
    return WeComUser(userid, name=userid, email=f"{userid}@example.com", status=1,
                     department=depts, main_department=depts[0] if depts else None,
                     is_leader_in_dept=tuple(0 for _ in depts))


# WeCom: 1 → 2 → 3 → 4 (3 and 4 new); Authing also has 5 → 6 → 7, gone from WeCom.
FULL_DESIRED_DEPTS = [WeComDepartment(4, "D4", 3), WeComDepartment(1, "Corp", 0),
                      WeComDepartment(3, "D3", 2), WeComDepartment(2, "D2", 1)]
FULL_ACTUAL_DEPTS = [ROOT, adept(2), adept(5), adept(6, "a5"), adept(7, "a6")]
FULL_DESIRED_USERS = [wuser("new", 4), wuser("stay", 2)]
FULL_ACTUAL_USERS = [managed("stay", 2), managed("gone", 7)]


def keys(ops: tuple[Operation, ...]) -> list[tuple[str, str, str]]:
    return [(op.kind.value, op.key, op.action.value) for op in ops]


def test_full_order_parents_first_users_after_children_first_deletes() -> None:
    ops = plan_full(FULL_DESIRED_USERS, FULL_DESIRED_DEPTS, FULL_ACTUAL_USERS,
                    FULL_ACTUAL_DEPTS, POLICY, Mode.FULL)
    assert keys(ops) == [
        ("department", "2", "unchanged"), ("department", "3", "create"),
        ("department", "4", "create"), ("user", "new", "create"),
        ("user", "stay", "unchanged"), ("user", "gone", "resign"),
        ("department", "7", "delete"), ("department", "6", "delete"),
        ("department", "5", "delete")]
    assert ops[2].needs == ("3",) and ops[3].needs == ("4",)


@pytest.mark.parametrize(("mode", "expected"), [
    (Mode.CREATE_UPDATE, {"create", "unchanged"}),
    (Mode.DELETE_ONLY, {"resign", "delete"}),
    (Mode.FULL, {"create", "unchanged", "resign", "delete"}),
])
def test_full_modes(mode: Mode, expected: set[str]) -> None:
    ops = plan_full(FULL_DESIRED_USERS, FULL_DESIRED_DEPTS, FULL_ACTUAL_USERS,
                    FULL_ACTUAL_DEPTS, POLICY, mode)
    assert {op.action.value for op in ops} == expected
    if mode is Mode.CREATE_UPDATE:
        assert not any(op.action in DESTRUCTIVE or op.action is Action.DELETE for op in ops)


@pytest.mark.parametrize(("rule", "extra_users", "blocked"), [
    pytest.param(UserDeletePolicy.RESIGN, [], set(), id="resigned-members-leave"),
    pytest.param(UserDeletePolicy.DELETE, [], set(), id="deleted-members-leave"),
    pytest.param(UserDeletePolicy.SUSPEND, [], {"7", "6", "5"}, id="suspended-stay"),
    pytest.param(UserDeletePolicy.IGNORE, [], {"7", "6", "5"}, id="ignored-stay"),
    pytest.param(UserDeletePolicy.RESIGN,
                 [replace(UNMANAGED, memberships=(member(6),))], {"6", "5"},
                 id="unmanaged-member-blocks-ancestors"),
])
def test_full_department_delete_only_when_empty(rule: UserDeletePolicy, extra_users: list,
                                                blocked: set[str]) -> None:
    policy = replace(POLICY, user_delete_policy=rule)
    ops = plan_full(FULL_DESIRED_USERS, FULL_DESIRED_DEPTS, [*FULL_ACTUAL_USERS, *extra_users],
                    FULL_ACTUAL_DEPTS, policy, Mode.FULL)
    dept_deletes = {op.key: op for op in ops if op.kind is Kind.DEPARTMENT
                    and op.key in ("5", "6", "7")}
    assert {k for k, op in dept_deletes.items() if op.action is Action.SKIP} == blocked
    for key in blocked:
        assert (dept_deletes[key].reason or "").startswith("blocked: department is not empty")


def test_full_moved_member_and_moved_child_free_a_department() -> None:
    desired_depts = [*FULL_DESIRED_DEPTS, WeComDepartment(6, "D6", 2)]
    desired_users = [*FULL_DESIRED_USERS, wuser("mover", 2)]
    actual_users = [managed("stay", 2), managed("mover", 5)]
    ops = plan_full(desired_users, desired_depts, actual_users, FULL_ACTUAL_DEPTS,
                    replace(POLICY, user_delete_policy=UserDeletePolicy.SUSPEND), Mode.FULL)
    got = {(op.kind.value, op.key): op.action.value for op in ops}
    assert got[("department", "6")] == "move"
    assert got[("user", "mover")] == "update"
    assert got[("department", "7")] == "delete"
    assert got[("department", "5")] == "delete"


def test_full_member_past_fifty_departments_frees_the_one_it_left() -> None:
    """The department a member leaves is freed when the plan writes the member's list
    in more than one call (set-user-departments plus add-department-members)."""
    kept = list(range(10, 70))
    desired_depts = [*FULL_DESIRED_DEPTS, *(WeComDepartment(d, f"D{d}", 1) for d in kept)]
    actual_depts = [*FULL_ACTUAL_DEPTS, *(adept(d) for d in kept)]
    actual_users = [managed("stay", 2), managed("many", *kept, 7)]
    ops = plan_full([*FULL_DESIRED_USERS, wuser("many", *kept)], desired_depts, actual_users,
                    actual_depts, replace(POLICY, user_delete_policy=UserDeletePolicy.SUSPEND),
                    Mode.FULL)
    many = next(op for op in ops if op.key == "many")
    assert {"set-user-departments", "add-department-members"} <= {
        r.endpoint for r in many.requests}
    got = {(op.kind.value, op.key): op.action.value for op in ops}
    assert [got[("department", k)] for k in ("7", "6", "5")] == ["delete"] * 3


def test_full_ignores_authing_objects_we_do_not_own() -> None:
    stranger = replace(managed("stranger"), custom_data=(), memberships=(FOREIGN,))
    manual_dept = AuthingDepartment("m1", None, "Manual", "root-id", "wecom")
    ops = plan_full([], [WeComDepartment(1, "Corp", 0)], [stranger, UNMANAGED],
                    [ROOT, manual_dept], POLICY, Mode.FULL)
    assert ops == ()


@pytest.mark.parametrize(("adopt", "action"), [(False, Action.SKIP), (True, Action.UPDATE)])
def test_full_conflict_with_unmanaged_user(adopt: bool, action: Action) -> None:
    unmanaged = AuthingUser("uid-x", email="zs@example.com", username="zhang")
    ops = plan_full([ZS], [], [unmanaged], DEPTS, replace(POLICY, adopt_existing=adopt),
                    Mode.CREATE_UPDATE)
    op = only(ops)
    assert (op.key, op.action, op.target) == ("zs", action, "uid-x")
    if adopt:
        assert body(op, "update-user")["externalId"] == "zs"
    else:
        assert op.reason == ("conflict: unmanaged Authing user uid-x has the same email and "
                             "no externalId; set adopt_existing to take it over")


@pytest.mark.parametrize(("matching", "how"), [
    ({"phone": "13800000000"}, "phone"),
    ({"username": "zs"}, "username"),
])
def test_full_conflict_identifiers(matching: dict, how: str) -> None:
    op = only(plan_full([ZS], [], [AuthingUser("uid-x", **matching)], DEPTS, POLICY,
                        Mode.CREATE_UPDATE))
    assert op.action is Action.SKIP and f"the same {how}" in (op.reason or "")


def test_full_rename_is_not_a_delete() -> None:
    renamed = replace(wuser("stay2", 2), renamed_from="stay")
    ops = plan_full([renamed], FULL_DESIRED_DEPTS[1:], [managed("stay", 2)], DEPTS, POLICY,
                    Mode.FULL)
    assert [op.action for op in ops if op.kind is Kind.USER] == [Action.UPDATE]


def test_full_orphan_department_is_skipped() -> None:
    ops = plan_full([], [WeComDepartment(9, "Orphan", 42)], [], DEPTS, POLICY, Mode.FULL)
    assert [(op.key, op.action) for op in ops if op.key == "9"] == [("9", Action.SKIP)]


# -- deletion guard, refs, policy ----------------------------------------------------------


def _ops(n: int, action: Action = Action.RESIGN) -> list[Operation]:
    return [Operation(Kind.USER, f"u{i}", action) for i in range(n)]


@pytest.mark.parametrize(("ops", "managed_total", "percent", "count", "blocked"), [
    (_ops(0), 0, 20, 100, False),
    (_ops(20), 100, 20, 100, False),  # exactly at the limit is allowed
    (_ops(21), 100, 20, 100, True),
    (_ops(100), 1000, 20, 100, False),
    (_ops(101), 1000, 20, 100, True),
    (_ops(5, Action.SUSPEND) + _ops(5, Action.DELETE), 20, 40, 100, True),
    (_ops(50, Action.UPDATE) + _ops(50, Action.UNCHANGED) + _ops(50, Action.SKIP), 10, 0, 0,
     False),
    (_ops(1), 0, 20, 100, True),
])
def test_deletion_guard(ops: list[Operation], managed_total: int, percent: float, count: int,
                        blocked: bool) -> None:
    verdict = deletion_guard(ops, managed_total, percent, count)
    assert verdict.blocked is blocked
    assert (verdict.reason is not None) is blocked


def test_count_managed() -> None:
    users = [managed("a", 2), UNMANAGED, replace(managed("b"), custom_data=(),
                                                 memberships=(FOREIGN,))]
    assert count_managed(users, DEPTS, POLICY) == 1 + 2  # one user, departments 2 and 3


def test_resolve_refs() -> None:
    index = DepartmentIndex.build(DEPTS, POLICY, (WeComDepartment(4, "Four", 2),))
    ops = plan_user(WeComUser("ls", name="L", department=(4,)), None, POLICY, index)
    with pytest.raises(UnresolvedDepartment, match="4"):
        resolve_refs(ops[1], {})
    done = resolve_refs(ops[1], {"4": "a4"})
    assert done.needs == ()
    assert body(done, "set-user-departments")["departments"][0]["departmentId"] == "a4"


def test_policy_from_settings() -> None:
    settings_ = Settings(authing_organization_code="corp", user_delete_policy="suspend")
    policy = Binding.from_settings(settings_, adopt_existing=True)
    assert (policy.organization_code, policy.user_delete_policy, policy.adopt_existing) == (
        "corp", UserDeletePolicy.SUSPEND, True)


# -- property: a state in step plans to nothing --------------------------------------------


@st.composite
def wecom_state(draw: st.DrawFn, named: bool = False,
                ) -> tuple[list[WeComUser], list[WeComDepartment], Binding]:
    dept_ids = list(range(2, draw(st.integers(2, 9))))
    depts = [WeComDepartment(1, "Corp", 0)]
    names = st.sampled_from(["研发", "Sales", "HR"])
    for i, dept_id in enumerate(dept_ids):
        parent = draw(st.sampled_from([1, *dept_ids[:i]]))
        depts.append(WeComDepartment(dept_id, draw(names if named else st.none() | names),
                                     parent))
    all_ids = [1, *dept_ids]
    userids = draw(st.lists(st.sampled_from(["zs", "ls", "ww", "zl", "sq", "a1", "b2"]),
                            max_size=6, unique=True))
    users = []
    for userid in userids:
        user_depts = draw(st.none() | st.lists(st.sampled_from(all_ids), unique=True,
                                               max_size=3).map(tuple))
        leaders = main = None
        if user_depts:
            leaders = draw(st.none() | st.tuples(*(st.integers(0, 1) for _ in user_depts)))
            main = draw(st.none() | st.sampled_from(user_depts))
        users.append(WeComUser(
            userid=userid, name=draw(st.none() | st.sampled_from(["张三", "Li Si"])),
            department=user_depts, main_department=main, is_leader_in_dept=leaders,
            position=draw(st.none() | st.sampled_from(["", "PM"])),
            mobile=draw(st.none() | st.sampled_from(
                ["", "13800000000", "+852 61234567", "+8613900000000", "bad"])),
            gender=draw(st.none() | st.integers(0, 2)),
            email=draw(st.none() | st.sampled_from(["", f"{userid}@example.com"])),
            status=draw(st.none() | st.sampled_from([1, 2, 4, 5])),
            avatar=draw(st.none() | st.sampled_from(["", "http://a/0"])),
            alias=draw(st.none() | st.sampled_from(["", f"{userid}.x"])),
            extattr=draw(st.none() | st.just((("爱好", "旅游"),))),
        ))
    mapping = MappingPolicy(
        username_source=draw(st.sampled_from(list(UsernameSource))),
        custom_fields=(("position", "title"), ("extattr.爱好", "hobby")))
    rule = draw(st.sampled_from(list(UserDeletePolicy)))
    return users, depts, replace(POLICY, mapping=mapping, user_delete_policy=rule)


def mirror(users: list[WeComUser], depts: list[WeComDepartment],
           policy: Binding) -> tuple[list[AuthingUser], list[AuthingDepartment]]:
    """The Authing state that already equals the WeCom state, built independently."""
    def did(wecom_id: int) -> str:
        return "root-id" if wecom_id == 1 else f"a{wecom_id}"

    authing_depts = [ROOT] + [
        AuthingDepartment(did(d.id), str(d.id), d.name or "whatever", did(d.parent_id or 1),
                          "wecom", tuple(map_department(d).custom_data))
        for d in depts if d.id != 1]
    authing_users = []
    for user in users:
        want = map_user(user, policy.mapping)
        values = {**dict(want.create_only), **dict(want.fields)}
        memberships = None
        if want.memberships is not None:
            main = next((m.department for m in want.memberships if m.main),
                        want.memberships[0].department if want.memberships else None)
            memberships = tuple(member(m.department, bool(m.leader), m.department == main)
                                for m in want.memberships)
        authing_users.append(AuthingUser(
            user_id=f"uid-{user.userid}", external_id=user.userid,
            username=values.get("username"), name=values.get("name"),
            phone=values.get("phone"), phone_country_code=values.get("phoneCountryCode"),
            email=values.get("email"), gender=values.get("gender"),
            status=values.get("status"), photo=values.get("photo"),
            custom_data=tuple(want.custom_data), memberships=memberships))
    return authing_users, authing_depts


@settings(max_examples=200, deadline=None)
@given(wecom_state())
def test_in_sync_state_plans_only_unchanged(state: tuple) -> None:
    users, depts, policy = state
    actual_users, actual_depts = mirror(users, depts, policy)
    ops = plan_full(users, depts, actual_users, actual_depts, policy, Mode.FULL)
    assert [op for op in ops if op.action is not Action.UNCHANGED or op.writes] == []
    assert len(ops) == len(users) + len(depts) - 1


class FakeAuthing:
    """Applies planned requests to an in-memory Authing, as the executor would."""

    def __init__(self, users: list[AuthingUser], depts: list[AuthingDepartment]) -> None:
        self.users = {u.user_id: u for u in users}
        self.depts = {d.department_id: d for d in depts}

    def apply(self, ops: tuple[Operation, ...]) -> None:
        for op in ops:
            ids = {d.open_department_id: d.department_id for d in self.depts.values()
                   if d.open_department_id}
            for request in resolve_refs(op, ids).requests:
                getattr(self, request.endpoint.replace("-", "_"))(dict(request.body))

    def _user(self, selector: str, options: dict | None = None) -> AuthingUser:
        if (options or {}).get("userIdType") == "external_id":
            return next(u for u in self.users.values() if u.external_id == selector)
        return self.users[selector]

    def create_user(self, b: dict) -> None:
        uid = f"new-{b['externalId']}"
        self.users[uid] = AuthingUser(uid, custom_data=tuple(b.pop("customData").items()),
                                      memberships=())
        self.update_user({"userId": uid, **b})

    def update_user(self, b: dict) -> None:
        user = self._user(b.pop("userId"))
        attrs = {"externalId": "external_id", "phoneCountryCode": "phone_country_code"}
        if "customData" in b:
            user = replace(user, custom_data=tuple(b.pop("customData").items()))
        self.users[user.user_id] = replace(user, **{attrs.get(k, k): v for k, v in b.items()})

    def set_user_departments(self, b: dict) -> None:
        user = self._user(b["userId"], b.get("options"))
        self.users[user.user_id] = replace(user, memberships=tuple(
            AuthingMembership(i["departmentId"], self.depts[i["departmentId"]].open_department_id,
                              "wecom", i["isLeader"], i["isMainDepartment"])
            for i in b["departments"]))

    def resign_user(self, b: dict) -> None:
        user = self.users[b["userId"]]
        self.users[user.user_id] = replace(user, status="Resigned", memberships=())

    def delete_users_batch(self, b: dict) -> None:
        for uid in b["userIds"]:
            del self.users[uid]

    def create_department(self, b: dict) -> None:
        did = f"n{b['openDepartmentId']}"
        self.depts[did] = AuthingDepartment(
            did, b["openDepartmentId"], b["name"], b["parentDepartmentId"], "wecom",
            tuple(b["customData"].items()))

    def update_department(self, b: dict) -> None:
        dept = self.depts[b["departmentId"]]
        self.depts[dept.department_id] = replace(
            dept, name=b.get("name", dept.name),
            parent_department_id=b.get("parentDepartmentId", dept.parent_department_id),
            custom_data=tuple(b.get("customData", dict(dept.custom_data or ())).items()))

    def delete_department(self, b: dict) -> None:
        did = b["departmentId"]
        assert not any(d.parent_department_id == did for d in self.depts.values())
        assert not any(m.department_id == did for u in self.users.values()
                       for m in u.memberships or ())
        del self.depts[did]


@settings(max_examples=200, deadline=None)
@given(wecom_state(named=True), wecom_state(named=True))
def test_applying_a_plan_converges(desired: tuple, before: tuple) -> None:
    users, depts, policy = desired
    fake = FakeAuthing(*mirror(before[0], before[1], policy))
    fake.apply(plan_full(users, depts, list(fake.users.values()), list(fake.depts.values()),
                         policy, Mode.FULL))
    again = plan_full(users, depts, list(fake.users.values()), list(fake.depts.values()),
                      policy, Mode.FULL)
    assert [op for op in again if op.writes] == []


# -- renames whose callback was lost (issue 11, kind 2) ------------------------------------


def _withheld(user: WeComUser, name: str) -> WeComUser:
    return replace(user, name=name, email=None, mobile=None)


def _named(account: AuthingUser, name: str) -> AuthingUser:
    return replace(account, name=name)


def test_full_moves_an_account_matched_by_email_instead_of_create_and_resign() -> None:
    renamed = replace(wuser("old2", 2), userid="new2", email="old2@example.com")
    ops = plan_full([renamed, wuser("stay", 2)], FULL_DESIRED_DEPTS,
                    [managed("stay", 2), managed("old2", 2)], FULL_ACTUAL_DEPTS, POLICY,
                    Mode.FULL)
    users = [op for op in ops if op.kind is Kind.USER]
    assert keys(tuple(users)) == [("user", "new2", "update"), ("user", "stay", "unchanged")]
    assert users[0].target == "uid-old2"
    assert {c.field: c.new for c in users[0].changes}["externalId"] == "new2"


def test_withheld_fields_match_a_rename_by_name_and_departments_only_when_unique() -> None:
    old = _named(replace(managed("w1", 2), email=None), "成员一")
    other = _named(replace(managed("w2", 3), email=None), "成员二")
    came = [_withheld(wuser("w1x", 2), "成员一"), _withheld(wuser("w2x", 2), "成员二")]
    # w2x has w2's name but not its departments: no evidence.
    assert {k: a.user_id for k, a in match_renames(came, [old, other], POLICY, INDEX).items()
            } == {"w1x": "uid-w1"}
    twins = [*came, _withheld(wuser("w1y", 2), "成员一")]  # two newcomers alike: ambiguous
    assert match_renames(twins, [old, other], POLICY, INDEX) == {}


def test_unmanaged_and_present_accounts_are_never_taken_as_renames() -> None:
    stranger = replace(managed("x1", 2), custom_data=(), memberships=())
    present = managed("p1", 2)
    came = [replace(wuser("x1new", 2), email="x1@example.com"),
            replace(wuser("p1new", 2), email="p1@example.com"), wuser("p1", 2)]
    assert match_renames(came, [stranger, present], POLICY, INDEX) == {}
