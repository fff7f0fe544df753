"""Conflicts in ``both`` converge (issue 10 §6; README "Conflict rule"), end to end: a
conflict repeated, and a value changed back on one side to what the other direction once
wrote there. The echo check must not settle a real change: the digest downstream left is
stale once upstream has written over it, and it holds every field the write sent (the
departments too)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import CallbackKeys
from .e2e_stack import ORG, Stack, running_stack
from .test_downstream_e2e import authing_writes, dead_reasons, root, wecom_user, writes


def department_key(s: Stack, wecom_id: int) -> str:
    with s.authing.state.lock:
        return next(d.department_id for d in s.authing.state.departments.values()
                    if d.open_department_id == str(wecom_id))


def quiet(s: Stack) -> None:
    """Settled, then nothing more is written on either side."""
    s.settle(60)
    counts = (writes(s), authing_writes(s))
    s.settle()
    assert (writes(s), authing_writes(s)) == counts
    assert not dead_reasons(s), dead_reasons(s)


@pytest.mark.parametrize("callbacks", [False, True], ids=["no-callback", "callback"])
def test_a_department_conflict_repeated_converges(
        db_url: str, keys: CallbackKeys, callbacks: bool) -> None:
    with running_stack(db_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = callbacks
        for name, dept_id in (("A", 2), ("B", 3), ("C", 4)):
            s.wecom.admin.create_department(name, 1, id=dept_id)
        s.wecom.admin.create_user("zl", "赵六", department=(2,), mobile="13800000006",
                                  email="zl@example.com")
        s.settle()
        uid = s.user("zl")["userId"]  # type: ignore[index]
        c_key = department_key(s, 4)
        for round_ in range(3):
            s.wecom.admin.update_user("zl", department=[3])  # WeCom: to B
            s.authing.admin.set_user_departments(uid, [{"departmentId": c_key}])  # to C
            quiet(s)
            in_wecom = [str(d) for d in wecom_user(s, "zl")["department"]]  # type: ignore[index]
            assert in_wecom == sorted(s.user_open_departments("zl")), round_


def _member(s: Stack) -> str:
    s.wecom.admin.create_department("A", 1, id=2)
    s.wecom.admin.create_department("B", 1, id=3)
    s.wecom.admin.create_user("ql", "钱七", department=(2,), mobile="13800000007",
                              email="ql@example.com")
    s.settle()
    return s.user("ql")["userId"]  # type: ignore[index,no-any-return]


# (what Authing writes, what WeCom changes to, what WeCom changes back to, the state of
# WeCom and of Authing to compare)
FIELD_CASES: dict[str, tuple[Callable[[Stack, str], None], Callable[[Stack], None],
                             Callable[[Stack], None], Callable[[Stack], tuple[object, object]]]] = {
    "name": (
        lambda s, uid: s.authing.admin.update_user(uid, name="认证名"),
        lambda s: s.wecom.admin.update_user("ql", name="企微名"),
        lambda s: s.wecom.admin.update_user("ql", name="认证名"),
        lambda s: (wecom_user(s, "ql")["name"], s.user("ql")["name"])),  # type: ignore[index]
    "department": (
        lambda s, uid: s.authing.admin.set_user_departments(
            uid, [{"departmentId": department_key(s, 3)}]),
        lambda s: s.wecom.admin.update_user("ql", department=[2]),
        lambda s: s.wecom.admin.update_user("ql", department=[3]),
        lambda s: ([str(d) for d in wecom_user(s, "ql")["department"]],  # type: ignore[index]
                   sorted(s.user_open_departments("ql")))),
    "status": (
        lambda s, uid: s.authing.admin.update_user(uid, status="Suspended"),
        lambda s: s.wecom.admin.enable_user("ql"),
        lambda s: s.wecom.admin.disable_user("ql"),
        lambda s: (wecom_user(s, "ql")["status"] == 2,  # type: ignore[index]
                   s.user("ql")["status"] != "Activated")),  # type: ignore[index]
}


@pytest.mark.parametrize("field", sorted(FIELD_CASES))
def test_a_wecom_value_changed_back_to_what_downstream_wrote_reaches_authing(
        sqlite_url: str, keys: CallbackKeys, field: str) -> None:
    """Downstream writes X to WeCom; WeCom changes to Y (upstream writes Y to Authing);
    WeCom changes back to X. That last callback shows the state downstream once wrote,
    but upstream has written since: a real change, applied, not an echo."""
    authing_sets, wecom_changes, wecom_reverts, states = FIELD_CASES[field]
    with running_stack(sqlite_url, keys, direction="both") as s:
        uid = _member(s)
        authing_sets(s, uid)
        quiet(s)
        wecom_side, authing_side = states(s)
        assert wecom_side == authing_side, ("downstream applied it", wecom_side, authing_side)
        wecom_changes(s)
        quiet(s)
        wecom_side, authing_side = states(s)
        assert wecom_side == authing_side, ("upstream applied it", wecom_side, authing_side)
        wecom_reverts(s)
        quiet(s)
        wecom_side, authing_side = states(s)
        assert wecom_side == authing_side, ("upstream applied the way back", wecom_side,
                                            authing_side)


def test_a_department_renamed_back_in_wecom_reaches_authing(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="both") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "市场部", root(s))["departmentId"]
        quiet(s)
        wecom_dept = int(s.open_id_of(dept) or 0) or int(
            s.authing.state.departments[dept].custom_data["wechatwork_department_id"])

        def names() -> tuple[str, str]:
            with s.wecom.state.lock:
                in_wecom = next(d.name for d in s.wecom.state.departments.walk()
                                if d.id == wecom_dept)
            with s.authing.state.lock:
                return in_wecom, s.authing.state.departments[dept].name

        a.update_department(ORG, dept, name="市场中心")  # downstream writes it to WeCom
        quiet(s)
        assert names() == ("市场中心", "市场中心")
        s.wecom.admin.update_department(wecom_dept, name="营销部")  # upstream to Authing
        quiet(s)
        assert names() == ("营销部", "营销部")
        s.wecom.admin.update_department(wecom_dept, name="市场中心")  # and back
        quiet(s)
        assert names() == ("市场中心", "市场中心")
