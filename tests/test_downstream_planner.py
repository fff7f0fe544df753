"""The downstream mapping over whole snapshots (``DownstreamPlanner.plan_all``): pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.binding import Binding
from sync_core.directory.essence import digest
from sync_core.directory.operations import Action, Mode, Operation
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.settings import UserDeletePolicy
from sync_core.wecom.downstream import DownstreamPlanner, DownstreamPolicy
from sync_core.wecom.model import WeComDepartment, WeComUser

BINDING = Binding(root_department_id="root")


def chain(levels: int) -> list[AuthingDepartment]:
    """``levels`` departments, each under the one before, the first under the root."""
    parent, out = "root", []
    for i in range(levels):
        out.append(AuthingDepartment(f"d{i}", name=f"部门{i}", parent_department_id=parent,
                                     organization_code="wecom"))
        parent = f"d{i}"
    return out


def test_a_department_below_wecoms_fifteen_levels_is_refused_before_any_call() -> None:
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    ops = planner.plan_all(SourceSnapshot((), tuple(chain(15))), TargetSnapshot((), ()),
                           BINDING, Mode.CREATE_UPDATE)
    by_key = {op.key: op for op in ops}
    assert all(by_key[f"d{i}"].action is Action.CREATE for i in range(14))  # levels 2-15
    deepest = by_key["d14"]
    assert (deepest.action, deepest.cause, deepest.requests) == (Action.SKIP, Cause.INVALID, ())
    assert "level 16" in (deepest.reason or "")


def test_an_equal_directory_plans_no_writes_and_withheld_fields_are_unknown() -> None:
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    dept = AuthingDepartment("d0", name="研发", parent_department_id="root",
                             organization_code="wecom",
                             custom_data=(("wechatwork_department_id", "2"),))
    user = AuthingUser("u1", external_id="zs", name="张三", email="zs@example.com",
                       phone="13800000000", status="Activated",
                       custom_data=(("wechatwork_user_id", "zs"),),
                       memberships=(AuthingMembership("d0", organization_code="wecom"),))
    member = WeComUser("zs", name="张三", department=(2,), status=1)  # mobile, email withheld
    ops = planner.plan_all(SourceSnapshot((user,), (dept,)),
                           TargetSnapshot((member,), (WeComDepartment(2, "研发", 1),)),
                           BINDING, Mode.FULL)
    assert [op.action for op in ops] == [Action.UNCHANGED, Action.UNCHANGED]
    assert not any(op.writes for op in ops)


def _written(planner: DownstreamPlanner, user: AuthingUser, member: WeComUser | None,
             ids: dict[str, str]) -> tuple[object, dict[str, object] | None]:
    from sync_core.directory.operations import resolve_refs

    op = planner.plan_user(user, member, BINDING, planner.index(ids, {}), user.user_id)[0]
    op = resolve_refs(op, ids) if op.needs else op
    if op.target is None:
        op = replace(op, target=user.external_id)
    essence = planner.essence(Kind.USER, user, member, BINDING)
    assert callable(essence)
    return op.action, essence(op)


def test_the_written_essence_holds_every_field_the_write_sent() -> None:
    """The link digest is what WeCom shows after the write: the departments moved to and
    the status an ``enable`` sets, not the member as read before it (a stale digest lets
    a later change back to the old state pass for an echo)."""
    from sync_core.wecom import essence as wecom_essence

    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    member = WeComUser("zs", name="张三", department=(2,), main_department=2, status=1)
    moved = AuthingUser("u1", external_id="zs", name="张三", status="Suspended",
                        custom_data=(("wechatwork_user_id", "zs"),),
                        memberships=(AuthingMembership("d3", organization_code="wecom"),))
    action, essence = _written(planner, moved, member, {"d3": "3"})
    assert action is Action.UPDATE
    assert essence == wecom_essence.user(replace(member, department=(3,), main_department=3,
                                                 status=2))
    gone = planner.essence(Kind.USER, None, member, BINDING)
    deleted = planner.plan_user(None, member, replace(BINDING, user_delete_policy="delete"),
                                planner.index({}, {}), "u1")[0]
    assert callable(gone) and gone(deleted) is None


def test_a_disabled_authing_user_is_never_created_and_resigned_is_gone() -> None:
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    index = planner.index({"d0": "2"}, {})
    suspended = AuthingUser("u1", username="zs", name="张三", status="Suspended",
                            memberships=(AuthingMembership("d0", organization_code="wecom"),))
    [op] = planner.plan_user(suspended, None, BINDING, index, "u1")
    assert (op.action, op.cause, op.requests) == (Action.SKIP, Cause.POLICY, ())
    member = WeComUser("zs", name="张三", department=(2,), status=1)
    resigned = replace(suspended, status="Resigned", memberships=())
    [op] = planner.plan_user(resigned, member, BINDING, index, "u1")  # policy resign
    assert op.action is Action.RESIGN and op.requests[0].body == {"userid": "zs", "enable": 0}
    no_departments = replace(suspended, memberships=())
    [op] = planner.plan_user(no_departments, member, BINDING, index, "u1")
    assert op.action is Action.UPDATE and "department" not in op.requests[0].body


# -- fields WeCom withholds or will not read: the link table's record decides -------------

DEPT = AuthingDepartment("d0", name="研发", parent_department_id="root",
                         organization_code="wecom",
                         custom_data=(("wechatwork_department_id", "2"),))
TREE = (WeComDepartment(2, "研发", 1),)


def authing_user(**values: Any) -> AuthingUser:
    base: dict[str, Any] = {
        "external_id": "zs", "name": "张三", "email": "zs@example.com",
        "phone": "13800000000", "status": "Activated", "gender": "M",
        "custom_data": (("wechatwork_user_id", "zs"),),
        "memberships": (AuthingMembership("d0", organization_code="wecom"),)}
    return AuthingUser("u1", **{**base, **values})


def user_ops(user: AuthingUser, member: WeComUser | None,
             policy: DownstreamPolicy | None = None) -> list[Operation]:
    planner = DownstreamPlanner(policy or DownstreamPolicy(), BINDING)
    ops = planner.plan_all(SourceSnapshot((user,), (DEPT,)),
                           TargetSnapshot(() if member is None else (member,), TREE),
                           BINDING, Mode.CREATE_UPDATE)
    return [op for op in ops if op.kind is Kind.USER]


def last_written(user: AuthingUser, member: WeComUser | None) -> str | None:
    """The digest the link table holds after downstream wrote ``user`` over ``member``."""
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    [op] = user_ops(user, member)
    essence = planner.essence(Kind.USER, user, member, BINDING)
    return digest(essence(op) if callable(essence) else essence)


FULL = WeComUser("zs", name="张三", department=(2,), main_department=2, mobile="13800000000",
                 email="zs@example.com", gender=1, status=1)
WITHHELD = WeComUser("zs", name="张三", department=(2,), main_department=2, status=1)
REFUSED = WeComUser("zs", department=(2,))  # user/list_id: the id and departments only


@pytest.mark.parametrize("first", [None, FULL], ids=["created", "updated"])
@pytest.mark.parametrize("shown", [WITHHELD, REFUSED], ids=["withheld", "refused"])
def test_an_unchanged_user_is_no_write_when_wecom_shows_less(
        first: WeComUser | None, shown: WeComUser) -> None:
    written = last_written(authing_user(), first)
    if first is not None:  # as written over FULL, re-read: WeCom's other fields unchanged
        shown = replace(shown, status=FULL.status) if shown.status is None else shown
    [op] = user_ops(authing_user(), replace(shown, last_written=written))
    if shown is REFUSED and first is not None:
        # WeCom's own fields (status) were in our last write's record and are not shown:
        # one write, whose record then matches.
        return
    assert op.action is Action.UNCHANGED and not op.writes, op


@pytest.mark.parametrize("changed", [
    {"phone": "13900000000"}, {"email": "zs2@example.com"}, {"gender": "F"},
    {"phone": "61234567", "phone_country_code": "+852"}])
@pytest.mark.parametrize("shown", [WITHHELD, REFUSED], ids=["withheld", "refused"])
def test_a_change_of_a_field_wecom_does_not_show_is_written(
        changed: dict[str, Any], shown: WeComUser) -> None:
    written = last_written(authing_user(), None)
    [op] = user_ops(authing_user(**changed), replace(shown, last_written=written))
    assert op.action is Action.UPDATE
    body = op.requests[0].body
    expected = {"mobile": "13900000000"} if "phone" in changed else {}
    if changed.get("phone_country_code"):
        expected = {"mobile": "+852-61234567"}
    if "email" in changed:
        expected = {"email": "zs2@example.com"}
    if "gender" in changed:
        expected = {"gender": "2"}
    assert expected.items() <= body.items(), body


def test_without_a_record_of_our_write_withheld_fields_stay_unknown() -> None:
    [op] = user_ops(authing_user(phone="13900000000"), WITHHELD)
    assert op.action is Action.UNCHANGED and not op.writes


def test_a_gender_unset_in_wecom_is_known_and_overwritten() -> None:
    [op] = user_ops(authing_user(gender="M"), replace(FULL, gender=0))
    assert op.action is Action.UPDATE and op.requests[0].body["gender"] == "1"


# -- mobiles: Authing keeps the country code apart, WeCom in the number -------------------

@pytest.mark.parametrize(("phone", "code", "wecom"), [
    ("61234567", "+852", "+852-61234567"),
    ("61234567", "+852", "+852 61234567"),
    ("66123456", "+853", "+853-66123456"),
    ("13800000000", "+86", "+86-13800000000"),
    ("13800000000", "+86", "13800000000"),
    ("13800000000", None, "+8613800000000"),
    ("2025550123", "+1", "+1-2025550123"),
])
def test_a_mobile_with_a_country_code_is_the_same_on_both_sides(
        phone: str, code: str | None, wecom: str) -> None:
    [op] = user_ops(authing_user(phone=phone, phone_country_code=code),
                    replace(FULL, mobile=wecom))
    assert op.action is Action.UNCHANGED and not op.writes


@pytest.mark.parametrize(("phone", "code", "sent"), [
    ("61234567", "+852", "+852-61234567"),
    ("2025550123", "+1", "+1-2025550123"),
    ("13900000000", "+86", "13900000000"),
    ("13900000000", None, "13900000000"),
])
def test_an_authing_phone_is_sent_with_its_country_code(
        phone: str, code: str | None, sent: str) -> None:
    [create] = user_ops(authing_user(phone=phone, phone_country_code=code), None)
    [update] = user_ops(authing_user(phone=phone, phone_country_code=code), FULL)
    assert create.requests[0].body["mobile"] == update.requests[0].body["mobile"] == sent


# -- userids are unique up to case in WeCom ------------------------------------------------

@pytest.mark.parametrize("order", ["holder-first", "holder-last"])
@pytest.mark.parametrize("other", ["BOB", "Bob", "bOB"])
def test_a_second_user_whose_userid_differs_only_in_case_is_a_conflict(
        order: str, other: str) -> None:
    holder = authing_user(external_id="bob", custom_data=())
    second = replace(authing_user(external_id=other, custom_data=(), name="乙",
                                  email="b2@example.com"), user_id="u2")
    users = (holder, second) if order == "holder-first" else (second, holder)
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    ops = planner.plan_all(SourceSnapshot(users, (DEPT,)),
                           TargetSnapshot((replace(FULL, userid="bob"),), TREE),
                           BINDING, Mode.FULL)
    by_key = {op.key: op for op in ops if op.kind is Kind.USER}
    assert by_key["u1"].action is Action.UNCHANGED
    assert (by_key["u2"].action, by_key["u2"].cause, by_key["u2"].requests) == (
        Action.SKIP, Cause.CONFLICT, ())
    assert "'bob'" in (by_key["u2"].reason or "") and "u1" in (by_key["u2"].reason or "")


# -- what a create must carry ---------------------------------------------------------------

def test_a_new_member_with_neither_mobile_nor_email_is_refused_before_any_call() -> None:
    [op] = user_ops(authing_user(phone=None, email=None), None)
    assert (op.action, op.cause, op.requests) == (Action.SKIP, Cause.INVALID, ())
    assert "60129" in (op.reason or "")


@pytest.mark.parametrize(("ignore", "sent", "not_sent"), [
    ({"name"}, {"name": "张三"}, ()),
    ({"mobile", "email"}, {"mobile": "13800000000", "email": "zs@example.com"}, ()),
    ({"mobile"}, {"email": "zs@example.com"}, ("mobile",)),
    ({"email"}, {"mobile": "13800000000"}, ("email",)),
])
def test_a_create_carries_what_wecom_requires_even_when_ignored(
        ignore: set[str], sent: dict[str, str], not_sent: tuple[str, ...]) -> None:
    policy = DownstreamPolicy(ignore=frozenset(ignore))
    [create] = user_ops(authing_user(), None, policy)
    body = create.requests[0].body
    assert sent.items() <= body.items() and not set(not_sent) & set(body), body
    [update] = user_ops(authing_user(name="新名", phone="13900000000", email="n@example.com"),
                        FULL, policy)
    assert not (ignore & set(update.requests[0].body)), update.requests[0].body


def _user(userid: str | None, *orgs: str, status: str = "Activated") -> AuthingUser:
    return AuthingUser("u1", external_id=userid, username="zs", name="张三",
                       email="zs@example.com", status=status,
                       custom_data=(("wechatwork_user_id", userid),) if userid else None,
                       memberships=tuple(AuthingMembership(f"d-{org}", organization_code=org)
                                         for org in orgs))


MEMBER = WeComUser("zs", name="张三", department=(2,), status=1, email="zs@example.com")
IDS = {"d-wecom": "2"}


@pytest.mark.parametrize("policy, action", [("delete", Action.DELETE),
                                            ("resign", Action.RESIGN),
                                            ("suspend", Action.SUSPEND)])
def test_a_member_whose_user_left_the_organization_follows_the_delete_policy(
        policy: str, action: Action) -> None:
    """The user's last department of the synced organization is gone (it is now only in
    another organization): the member it holds left the scope. Never left active."""
    binding = replace(BINDING, user_delete_policy=UserDeletePolicy(policy))
    planner = DownstreamPlanner(DownstreamPolicy(), binding)
    for user in (_user("zs", "other"), _user("zs")):
        ops = planner.plan_user(user, MEMBER, binding, planner.index(IDS, {}), "u1")
        assert [op.action for op in ops] == [action], ops


def test_a_user_with_no_department_and_no_member_is_still_waited_for() -> None:
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    [op] = planner.plan_user(_user("zs", "other"), None, BINDING, planner.index(IDS, {}), "u1")
    assert (op.action, op.cause) == (Action.SKIP, Cause.BLOCKED)


def test_a_reconcile_removes_only_our_members_of_users_that_left_the_organization() -> None:
    """In a reconcile the member is ours when the link table says downstream wrote it; a
    member merely matching by the userid rule stays a per-item skip. The removal is a
    delete the threshold counts."""
    binding = replace(BINDING, user_delete_policy=UserDeletePolicy.DELETE)
    planner = DownstreamPlanner(DownstreamPolicy(), binding)
    dept = AuthingDepartment("d-wecom", name="研发", parent_department_id="root",
                             organization_code="wecom",
                             custom_data=(("wechatwork_department_id", "2"),))
    source = SourceSnapshot((_user(None, "other"),), (dept,))
    wecom = (WeComDepartment(2, "研发", 1),)
    for managed, action in ((frozenset({(Kind.USER, "zs")}), Action.DELETE),
                            (frozenset(), Action.SKIP)):
        ops = planner.plan_all(source, TargetSnapshot((MEMBER,), wecom, None, (), managed),
                               binding, Mode.FULL)
        assert [op.action for op in ops if op.kind is Kind.USER] == [action], ops


@pytest.mark.parametrize("userid", ["zs2", "ZS2"])
def test_a_changed_externalid_is_a_conflict_naming_the_member(userid: str) -> None:
    """WeCom renames only userids it generated, once (reference §3.6); downstream always
    gives the userid. The member keeps its userid, nothing is written (no write-back of
    a userid WeCom does not hold) and the item names both."""
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    [op] = planner.plan_user(_user(userid, "wecom"), MEMBER, BINDING,
                             planner.index(IDS, {}), "u1")
    assert (op.action, op.cause, op.requests) == (Action.SKIP, Cause.CONFLICT, ())
    assert userid in (op.reason or "") and "'zs'" in (op.reason or "")


def test_a_userid_changed_only_in_case_is_the_same_member() -> None:
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    ops = planner.plan_user(_user("ZS", "wecom"), MEMBER, BINDING, planner.index(IDS, {}), "u1")
    assert all(op.cause is not Cause.CONFLICT for op in ops), ops


def test_an_entity_wecom_removed_before_upstream_applied_it_is_not_re_created() -> None:
    """``both``: the target reader marks a member or department that upstream synced
    from WeCom and WeCom no longer holds; whatever Authing says, nothing is written."""
    planner = DownstreamPlanner(DownstreamPolicy(), BINDING)
    index = planner.index(IDS, {})
    [op] = planner.plan_user(_user("zs", "wecom"), WeComUser("zs", removed=True), BINDING,
                             index, "u1")
    assert (op.action, op.requests) == (Action.SKIP, ())
    dept = AuthingDepartment("d-wecom", name="研发", parent_department_id="root",
                             organization_code="wecom")
    [op] = planner.plan_department(dept, WeComDepartment(2, removed=True), BINDING, index,
                                   "d-wecom")
    assert (op.action, op.requests) == (Action.SKIP, ())
