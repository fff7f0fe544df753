"""A missed echo writes nothing: what one direction wrote, planned the other way against
the same state with no echo check (the planners called directly, the engine's
``is_echo`` bypassed), gives no write.

WeCom is the WeCom simulator's directory, in process (its create and update rules, its
defaults for what a write did not send: leader flags 0, the first department main, status
未激活, gender 0); Authing is the records the upstream plan's requests make. Deliberate
differences are named where they are: a field WeCom withholds on read is unknown, not
different (``test_withheld_fields_are_unknown_not_different``); customData's mirrors of
what Authing holds itself (``wechatwork_department_ids``, ``wechatwork_parent_department_id``)
are not written back by downstream, and upstream writes them only with another change
(``authing.planner._MIRRORS``); an Authing user with no main department gets WeCom's once
(``test_authing_without_a_main_department_gets_wecoms_once``).

Found before the fixes (downstream, then upstream): leader flags cleared and the first
department made main (downstream sent no ``is_leader_in_dept``/``main_department``);
customData ``wechatwork_department_ids`` and, after a move, ``wechatwork_parent_department_id``
written; gender ``U`` written over none (WeCom's 0). Upstream, then downstream: nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from simulators.wecom.state import Directory
from simulators.wecom.validation import DEPARTMENT_FIELDS, USER_FIELDS, read_fields
from sync_core.authing import planner as upstream
from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.binding import Binding
from sync_core.directory.operations import Mode, Operation
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.wecom.downstream import (
    PARENT_KEY,
    SOURCE_KEY,
    WRITE_BACK_DEPARTMENT,
    WRITE_BACK_USER,
    DownstreamPlanner,
    DownstreamPolicy,
)
from sync_core.wecom.model import WeComDepartment, WeComUser
from sync_core.wecom.target import _ints  # the ids as the writer sends them

ORG = "wecom"
BINDING = Binding(root_department_id="root")


def writes(ops: tuple[Operation, ...]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """The planned writes as (key, action, changes): empty when nothing would be written."""
    return [(op.key, op.action.value, op.changes) for op in ops if op.requests]


# -- the two sides ---------------------------------------------------------------------------


class WeCom:
    """The simulator's directory, written to as the API writes it."""

    def __init__(self) -> None:
        self.directory = Directory()

    def department(self, name: str, parent: int = 1, dept_id: int | None = None) -> int:
        values, _ = read_fields({"name": name, "parentid": parent,
                                 **({"id": dept_id} if dept_id else {})}, DEPARTMENT_FIELDS)
        return self.directory.create_department(values)[0]

    def apply(self, ops: tuple[Operation, ...]) -> None:
        for op in ops:
            for request in op.requests:
                body = _ints({k: v for k, v in request.body.items() if k != SOURCE_KEY})
                if request.endpoint == "user/create":
                    self.directory.create_user(read_fields(body, USER_FIELDS)[0])
                elif request.endpoint == "user/update":
                    self.directory.update_user(read_fields(body, USER_FIELDS)[0], by_api=True)
                elif request.endpoint == "department/update":
                    self.directory.update_department(read_fields(body, DEPARTMENT_FIELDS)[0])
                elif request.endpoint not in (WRITE_BACK_USER, WRITE_BACK_DEPARTMENT):
                    raise AssertionError(f"not modelled: {request.endpoint}")

    def users(self, withhold: bool = False) -> list[WeComUser]:
        return [WeComUser.from_api(u.view(withhold_sensitive=withhold))
                for u in self.directory.users]

    def departments(self) -> list[WeComDepartment]:
        return [WeComDepartment.from_api(d) for d in self.directory.department_list()]


def authing_department(dept_id: str, wecom_id: int, name: str,
                       parent: str = "root") -> AuthingDepartment:
    """A department linked to WeCom's ``wecom_id`` (the keys here are ``d<WeCom id>``)."""
    return AuthingDepartment(dept_id, open_department_id=str(wecom_id), name=name,
                             parent_department_id=parent, organization_code=ORG,
                             custom_data=(("wechatwork_department_id", str(wecom_id)),
                                          ("wechatwork_parent_department_id",
                                           "1" if parent == "root" else parent[1:])))


def written_back(user: AuthingUser, ops: tuple[Operation, ...]) -> AuthingUser:
    """``user`` after downstream's write-back of the userid it chose."""
    for op in ops:
        for request in op.requests:
            if request.endpoint == WRITE_BACK_USER and request.body["userId"] == user.user_id:
                user = replace(user, external_id=request.body["externalId"],
                               custom_data=tuple(request.body["customData"].items()))
    return user


def departments_written_back(depts: list[AuthingDepartment],
                             ops: tuple[Operation, ...]) -> list[AuthingDepartment]:
    """``depts`` after downstream's department write-backs (``WeComWriter.write``: the
    department's and its parent's WeCom ids; keys here are ``d<WeCom id>``)."""
    for op in ops:
        for request in op.requests:
            if request.endpoint != WRITE_BACK_DEPARTMENT:
                continue
            body = request.body
            parent = str(body[PARENT_KEY])
            custom = {**body["customData"],
                      "wechatwork_department_id": str(body[SOURCE_KEY])[1:],
                      "wechatwork_parent_department_id": "1" if parent == "root"
                      else parent[1:]}
            depts = [replace(d, custom_data=tuple(custom.items()))
                     if d.department_id == body["departmentId"] else d for d in depts]
    return depts


def authing_from_upstream(ops: tuple[Operation, ...],
                          depts: list[AuthingDepartment]) -> list[AuthingUser]:
    """The Authing users upstream's create-user and set-user-departments calls make."""
    by_wecom = {d.open_department_id: d.department_id for d in depts}
    users: dict[str, AuthingUser] = {}
    for op in ops:
        for request in op.requests:
            body = request.body
            if request.endpoint == "create-user":
                key = body["externalId"]
                users[key] = AuthingUser(
                    f"a-{key}", external_id=key, username=body.get("username"),
                    name=body.get("name"), phone=body.get("phone"),
                    phone_country_code=body.get("phoneCountryCode"),
                    email=body.get("email"), gender=body.get("gender"),
                    status=body.get("status"), photo=body.get("photo"),
                    custom_data=tuple(body.get("customData", {}).items()), memberships=())
            elif request.endpoint == "set-user-departments":
                key = body["userId"]
                users[key] = replace(users[key], memberships=tuple(
                    AuthingMembership(str(item["departmentId"]),
                                      open_department_id=next(
                                          (o for o, a in by_wecom.items()
                                           if a == item["departmentId"]), None),
                                      organization_code=ORG, is_leader=item["isLeader"],
                                      is_main=item["isMainDepartment"])
                    for item in body["departments"]))
    return list(users.values())


def downstream_plan(authing: list[AuthingUser], depts: list[AuthingDepartment],
                    wecom: WeCom, *, rule: str = "username",
                    withhold: bool = False) -> tuple[Operation, ...]:
    planner = DownstreamPlanner(DownstreamPolicy(userid_source=rule), BINDING)
    return planner.plan_all(SourceSnapshot(tuple(authing), tuple(depts)),
                            TargetSnapshot(tuple(wecom.users(withhold)),
                                           tuple(wecom.departments())),
                            BINDING, Mode.CREATE_UPDATE)


def upstream_plan(wecom: WeCom, authing: list[AuthingUser], depts: list[AuthingDepartment],
                  *, withhold: bool = False) -> tuple[Operation, ...]:
    return upstream.plan_full(wecom.users(withhold), wecom.departments(), authing, depts,
                              BINDING, Mode.CREATE_UPDATE)


def two_departments() -> tuple[WeCom, list[AuthingDepartment]]:
    wecom = WeCom()
    wecom.department("研发", dept_id=2)
    wecom.department("销售", dept_id=3)
    return wecom, [authing_department("d2", 2, "研发"), authing_department("d3", 3, "销售")]


# -- downstream, then upstream ---------------------------------------------------------------


def in_two(d2: tuple[bool, bool], d3: tuple[bool, bool], *, d3_first: bool = False
           ) -> tuple[AuthingMembership, ...]:
    """Memberships of departments d2 and d3 (WeCom 2 and 3), each (isLeader, isMain)."""
    two = (AuthingMembership("d2", "2", ORG, *d2), AuthingMembership("d3", "3", ORG, *d3))
    return two[::-1] if d3_first else two


def zhangsan(memberships: tuple[AuthingMembership, ...]) -> AuthingUser:
    """张三, active, userid by the username rule."""
    return AuthingUser("u1", username="zhangsan", name="张三", email="zs@example.com",
                       status="Activated", memberships=memberships)


def downstream_then_upstream(authing: list[AuthingUser], depts: list[AuthingDepartment],
                             wecom: WeCom, *, rule: str = "username"
                             ) -> tuple[Operation, ...]:
    ops = downstream_plan(authing, depts, wecom, rule=rule)
    assert writes(ops), "the first sync writes"
    wecom.apply(ops)
    authing = [written_back(u, ops) for u in authing]
    assert not writes(downstream_plan(authing, depts, wecom, rule=rule)), "settled"
    return upstream_plan(wecom, authing, depts)


def test_a_member_with_several_departments_a_leader_flag_and_a_main_one() -> None:
    wecom, depts = two_departments()
    user = AuthingUser("u1", username="zhangsan", name="张三", phone="13800000000",
                       email="zs@example.com", status="Activated", custom_data=(),
                       memberships=(AuthingMembership("d2", "2", ORG, is_leader=True,
                                                      is_main=False),
                                    AuthingMembership("d3", "3", ORG, is_leader=False,
                                                      is_main=True)))
    assert writes(downstream_then_upstream([user], depts, wecom)) == []


def test_a_member_with_mobile_email_and_gender() -> None:
    wecom, depts = two_departments()
    user = AuthingUser("u1", username="lisi", name="李四", phone="61234567",
                       phone_country_code="+852", email="LiSi@Example.com", gender="F",
                       status="Activated", custom_data=(("title", "engineer"),),
                       memberships=(AuthingMembership("d2", "2", ORG, is_leader=False,
                                                      is_main=True),))
    assert writes(downstream_then_upstream([user], depts, wecom)) == []


def test_userids_from_external_id_and_from_the_username_and_email_rules() -> None:
    wecom, depts = two_departments()
    by_external = AuthingUser("u1", external_id="ext-1", username="wangwu", name="王五",
                              email="ww@example.com", status="Activated",
                              memberships=(AuthingMembership("d2", "2", ORG, is_main=True),))
    by_username = AuthingUser("u2", username="zhaoliu", name="赵六", email="zl@example.com",
                              status="Activated",
                              memberships=(AuthingMembership("d3", "3", ORG, is_main=True),))
    assert writes(downstream_then_upstream([by_external, by_username], depts, wecom)) == []
    wecom, depts = two_departments()
    by_email = AuthingUser("u3", username="qianqi", name="钱七", email="qq7@example.com",
                           status="Activated",
                           memberships=(AuthingMembership("d2", "2", ORG, is_main=True),))
    assert writes(downstream_then_upstream([by_email], depts, wecom, rule="email")) == []


def test_a_department_renamed_and_moved_in_authing() -> None:
    wecom, depts = two_departments()
    wecom.department("平台", parent=2, dept_id=4)
    depts.append(authing_department("d4", 4, "平台", parent="d2"))
    moved = [*depts[:2], replace(depts[2], name="基础平台", parent_department_id="d3")]
    ops = downstream_plan([], moved, wecom)
    assert writes(ops)
    wecom.apply(ops)
    moved = departments_written_back(moved, ops)
    assert writes(downstream_plan([], moved, wecom)) == [], "settled"
    assert writes(upstream_plan(wecom, [], moved)) == []


# -- upstream, then downstream ---------------------------------------------------------------


def upstream_then_downstream(wecom: WeCom, depts: list[AuthingDepartment], *,
                             rule: str = "username") -> tuple[Operation, ...]:
    ops = upstream_plan(wecom, [], depts)
    assert writes(ops), "the first sync writes"
    authing = authing_from_upstream(ops, depts)
    assert not writes(upstream_plan(wecom, authing, depts)), "settled"
    return downstream_plan(authing, depts, wecom, rule=rule)


def wecom_member(wecom: WeCom, **body: Any) -> None:
    wecom.directory.create_user(read_fields(body, USER_FIELDS)[0], status=1)


def test_upstream_a_member_with_several_departments_a_leader_flag_and_a_main_one() -> None:
    wecom, depts = two_departments()
    wecom_member(wecom, userid="zhangsan", name="张三", mobile="13800000000",
                 department=[2, 3], is_leader_in_dept=[1, 0], main_department=3,
                 email="zs@example.com", gender="1")
    assert writes(upstream_then_downstream(wecom, depts)) == []


def test_upstream_a_member_with_an_international_mobile_and_no_gender() -> None:
    wecom, depts = two_departments()
    wecom_member(wecom, userid="lisi", name="李四", mobile="+852-61234567", department=[2],
                 email="lisi@example.com")
    assert writes(upstream_then_downstream(wecom, depts)) == []


def test_upstream_userids_under_either_rule() -> None:
    """The userid upstream writes as externalId is the one downstream uses, whatever the
    rule (``username``, or the email's local part that here differs from it)."""
    for rule in ("username", "email"):
        wecom, depts = two_departments()
        wecom_member(wecom, userid="wangwu", name="王五", email="ww@example.com",
                     department=[2])
        assert writes(upstream_then_downstream(wecom, depts, rule=rule)) == []


def test_upstream_a_department_renamed_and_moved_in_wecom() -> None:
    wecom, depts = two_departments()
    wecom.department("平台", parent=2, dept_id=4)
    depts.append(authing_department("d4", 4, "平台", parent="d2"))
    wecom.directory.update_department(read_fields({"id": 4, "name": "基础平台", "parentid": 3},
                                                  DEPARTMENT_FIELDS)[0])
    ops = upstream_plan(wecom, [], depts)
    assert writes(ops)
    for op in ops:  # as Authing holds it after update-department
        for request in op.requests:
            if request.endpoint == "update-department":
                body = request.body
                depts = [replace(d, name=body.get("name", d.name),
                                 parent_department_id=body.get("parentDepartmentId",
                                                               d.parent_department_id),
                                 custom_data=tuple(body.get("customData",
                                                            dict(d.custom_data or ())).items()))
                         if d.department_id == body["departmentId"] else d for d in depts]
    assert writes(upstream_plan(wecom, [], depts)) == []
    assert writes(downstream_plan([], depts, wecom)) == []


# -- deliberate --------------------------------------------------------------------------------


def test_withheld_fields_are_unknown_not_different() -> None:
    """WeCom withholds mobile, email, avatar and gender from newer apps: upstream leaves
    them unknown (no write), and downstream does not rewrite them on a plain read."""
    wecom, depts = two_departments()
    user = AuthingUser("u1", username="zhangsan", name="张三", phone="13800000000",
                       email="zs@example.com", gender="M", status="Activated",
                       memberships=(AuthingMembership("d2", "2", ORG, is_main=True),))
    ops = downstream_plan([user], depts, wecom)
    wecom.apply(ops)
    user = written_back(user, ops)
    assert writes(upstream_plan(wecom, [user], depts, withhold=True)) == []
    assert writes(downstream_plan([user], depts, wecom, withhold=True)) == []


def test_authing_without_a_main_department_gets_wecoms_once() -> None:
    """Deliberate: Authing may name no main department, WeCom always has one (the first,
    unless told). Upstream writes WeCom's main to Authing, once (customData's mirror of
    the memberships goes with that write): afterwards the two agree and downstream sends
    it back as it is."""
    wecom, depts = two_departments()
    user = zhangsan(in_two((True, False), (False, False), d3_first=True))
    ops = downstream_then_upstream([user], depts, wecom)
    assert [(key, [c.field for c in changes]) for key, _, changes in writes(ops)] \
        == [("zhangsan", ["customData.wechatwork_department_ids", "departments"])]
    change = writes(ops)[0][2][-1]
    assert (change.old, change.new) == ("2[leader];3", "2[leader];3[main]")


def test_a_flag_changed_alone_in_authing_goes_to_wecom_and_stays() -> None:
    """Downstream sends a leader or main flag changed alone (departments unchanged), so
    that WeCom holds it and upstream does not put the old one back."""
    wecom, depts = two_departments()
    user = zhangsan(in_two((False, True), (False, False)))
    ops = downstream_plan([user], depts, wecom)
    wecom.apply(ops)
    user = written_back(user, ops)
    assert writes(upstream_plan(wecom, [user], depts)) == []
    user = replace(user, memberships=in_two((False, False), (True, True)))
    ops = downstream_plan([user], depts, wecom)
    assert [(k, a) for k, a, _ in writes(ops)] == [("u1", "update")]
    wecom.apply(ops)
    [member] = wecom.users()
    assert (member.is_leader_in_dept, member.main_department) == ((0, 1), 3)
    assert writes(downstream_plan([user], depts, wecom)) == []
    assert writes(upstream_plan(wecom, [user], depts)) == []
