"""The downstream mapping over whole snapshots (``DownstreamPlanner.plan_all``): pure."""

from __future__ import annotations

from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.binding import Binding
from sync_core.directory.operations import Action, Mode
from sync_core.directory.vocabulary import Cause
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
