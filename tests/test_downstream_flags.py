"""Downstream's leader/main flags against WeCom reads that do not show them: a no-op
reconcile makes no WeCom write (review of 25942f5)."""

from __future__ import annotations

from dataclasses import replace

from sync_core.authing.model import AuthingUser
from sync_core.directory.essence import digest
from sync_core.directory.operations import Kind, Mode
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.wecom.downstream import DownstreamPlanner, DownstreamPolicy
from sync_core.wecom.model import WeComUser
from tests.test_round_trip_noop import (
    BINDING,
    downstream_plan,
    in_two,
    two_departments,
    writes,
    written_back,
    zhangsan,
)


def test_a_leader_flag_read_through_list_id_is_unknown_not_a_write_every_run() -> None:
    """Reads refused (48009/60020): the member comes from user/list_id (departments, no
    is_leader_in_dept, no main_department) with the link table's digest of our write."""
    wecom, depts = two_departments()
    user = zhangsan(in_two((True, True), (False, False)))
    planner = DownstreamPlanner(DownstreamPolicy(userid_source="username"), BINDING)
    ops = downstream_plan([user], depts, wecom)
    user, written = _synced(planner, user, wecom, ops)
    [member] = wecom.users()
    seen = WeComUser(userid=member.userid, department=member.department,
                     last_written=written)
    plan = planner.plan_all(SourceSnapshot((user,), tuple(depts)),
                            TargetSnapshot((seen,), tuple(wecom.departments())),
                            BINDING, Mode.CREATE_UPDATE)
    assert writes(plan) == []


def _synced(planner: DownstreamPlanner, user: AuthingUser, wecom: object,
            ops: tuple) -> tuple[AuthingUser, str | None]:
    """``ops`` (a first downstream plan) applied to WeCom and written back to Authing:
    the user as Authing then holds it, and the digest the writer records."""
    wecom.apply(ops)  # type: ignore[attr-defined]
    user = written_back(user, ops)
    [op] = [o for o in ops if o.kind is Kind.USER]
    essence = planner.essence(Kind.USER, user, None, BINDING)
    assert callable(essence)
    return user, digest(essence(replace(op, target="zhangsan")))


def _list_id_round(planner: DownstreamPlanner, user: AuthingUser, depts: list,
                   wecom: object, written: str | None) -> tuple[tuple, str | None]:
    """One downstream reconcile over a user/list_id read (with the link table's digest),
    applied to the simulator; returns the plan and the digest the writer records."""
    [member] = wecom.users()  # type: ignore[attr-defined]
    seen = WeComUser(userid=member.userid, department=member.department,
                     last_written=written)
    plan = planner.plan_all(SourceSnapshot((user,), tuple(depts)),
                            TargetSnapshot((seen,), tuple(wecom.departments())),  # type: ignore[attr-defined]
                            BINDING, Mode.CREATE_UPDATE)
    wecom.apply(plan)  # type: ignore[attr-defined]
    for op in plan:
        if op.kind is Kind.USER and op.requests:
            essence = planner.essence(Kind.USER, user, seen, BINDING)
            assert callable(essence)
            written = digest(essence(op))
    return plan, written


def test_a_main_department_changed_alone_under_list_id_reads_settles() -> None:
    wecom, depts = two_departments()
    user = zhangsan(in_two((False, True), (False, False)))
    planner = DownstreamPlanner(DownstreamPolicy(userid_source="username"), BINDING)
    ops = downstream_plan([user], depts, wecom)
    user, written = _synced(planner, user, wecom, ops)
    plan, written = _list_id_round(planner, user, depts, wecom, written)
    assert writes(plan) == []
    user = replace(user, memberships=in_two((False, False), (False, True)))
    rounds = []
    for _ in range(3):
        plan, written = _list_id_round(planner, user, depts, wecom, written)
        rounds.append(len(writes(plan)))
    assert rounds[1:] == [0, 0], rounds
    [member] = wecom.users()
    assert member.main_department == 3


def test_department_ignored_sends_no_flags_and_settles_under_list_id_reads() -> None:
    """WECOM_SYNC_DOWNSTREAM_IGNORE_FIELDS=department: WeCom keeps its own main (its
    first department) where Authing names another; list_id reads then write nothing."""
    wecom, depts = two_departments()
    user = zhangsan(in_two((True, False), (False, True)))
    planner = DownstreamPlanner(DownstreamPolicy(userid_source="username",
                                                 ignore=frozenset({"department"})),
                                BINDING)
    ops = planner.plan_all(SourceSnapshot((user,), tuple(depts)),
                           TargetSnapshot((), tuple(wecom.departments())),
                           BINDING, Mode.CREATE_UPDATE)
    user, written = _synced(planner, user, wecom, ops)
    rounds = []
    for _ in range(2):
        plan, written = _list_id_round(planner, user, depts, wecom, written)
        rounds.append(writes(plan))
    assert rounds == [[], []]


def test_a_flag_only_update_records_the_essence_its_callback_shows() -> None:
    """The echo check: WeCom's member after our flag-only write has the essence (and so
    the digest) the writer recorded for it."""
    from sync_core.wecom import essence as wecom_essence

    wecom, depts = two_departments()
    user = zhangsan(in_two((False, True), (False, False)))
    planner = DownstreamPlanner(DownstreamPolicy(userid_source="username"), BINDING)
    ops = downstream_plan([user], depts, wecom)
    wecom.apply(ops)
    user = written_back(user, ops)
    user = replace(user, memberships=in_two((True, False), (False, True)))
    [before] = wecom.users()
    ops = downstream_plan([user], depts, wecom)
    [op] = [o for o in ops if o.kind is Kind.USER and o.requests]
    wecom.apply(ops)
    [after] = wecom.users()
    essence = planner.essence(Kind.USER, user, before, BINDING)
    assert callable(essence)
    assert essence(op) == wecom_essence.user(after)
    assert after.main_department == 3 and after.is_leader_in_dept == (1, 0)


def test_update_policy_none_sends_no_flag_only_update() -> None:
    wecom, depts = two_departments()
    user = zhangsan(in_two((False, True), (False, False)))
    planner = DownstreamPlanner(DownstreamPolicy(userid_source="username", update=False),
                                BINDING)
    ops = downstream_plan([user], depts, wecom)
    wecom.apply(ops)
    user = replace(written_back(user, ops),
                   memberships=in_two((True, False), (False, True)))
    plan = planner.plan_all(SourceSnapshot((user,), tuple(depts)),
                            TargetSnapshot(tuple(wecom.users()), tuple(wecom.departments())),
                            BINDING, Mode.CREATE_UPDATE)
    assert writes(plan) == []
