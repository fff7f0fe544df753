"""The downstream mapping over whole snapshots (``DownstreamPlanner.plan_all``): pure."""

from __future__ import annotations

from dataclasses import replace

from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.binding import Binding
from sync_core.directory.operations import Action, Mode
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
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
