"""Every Authing limit the product writes into, next to WeCom's maximum for the source value.

Each row of ROWS names an Authing limit (reference/authing-api.md) beside the WeCom value
that flows into it and WeCom's maximum for it (reference/wecom-platform.md, issue 12). Each
row builds the WeCom value at its documented maximum, plans it, and checks the planned
requests twice: each fits every Authing limit (so Authing will not refuse it), and the
value passes through whole (split over several calls where needed) or, where it truly
cannot fit, is reported as unfit with its reason while the rest is still written.

Batches the product forms itself (create-users-batch.list, delete-users-batch.userIds,
list-users ``externalId IN``, pages) are chunked by 50 whatever their source size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sync_core.authing.mapping import (
    CUSTOM_VALUE_MAX,
    SET_DEPARTMENTS_MAX,
    USER_DEPARTMENTS_FIELD,
    USER_ID_FIELD,
)
from sync_core.authing.model import AuthingMembership, AuthingUser
from sync_core.authing.planner import DepartmentIndex, plan_department, plan_user
from sync_core.binding import Binding
from sync_core.directory.operations import Operation, UserRef
from sync_core.wecom.model import WeComDepartment, WeComUser

POLICY = Binding(organization_code="wecom", root_department_id="root-id")
TOP_ID = 2**32 - 1  # WeCom department ids go up to 2^32 - 1 (issue 12)
WECOM_MAX_DEPARTMENTS = 100  # user/create "department 不超过100个"
ARRAY_LIMITS = {("set-user-departments", "departments"): SET_DEPARTMENTS_MAX,
                ("add-department-members", "userIds"): 50,
                ("create-users-batch", "list"): 50, ("delete-users-batch", "userIds"): 50}


def _index(ids: range | tuple[int, ...]) -> DepartmentIndex:
    return DepartmentIndex(authing_ids={1: "root-id", **{d: f"a{d}" for d in ids}})


def _within_authing_limits(op: Operation) -> None:
    for request in op.requests:
        for (endpoint, field), limit in ARRAY_LIMITS.items():
            if request.endpoint == endpoint:
                assert len(request.body[field]) <= limit, (endpoint, field)
        for key, value in (request.body.get("customData") or {}).items():
            assert len(str(value)) <= CUSTOM_VALUE_MAX, key


def _memberships(op: Operation) -> dict[str, tuple[bool, bool]]:
    """What the requests leave the user in: Authing department id → (leader, main)."""
    final: dict[str, tuple[bool, bool]] = {}
    for request in op.requests:
        if request.endpoint == "set-user-departments":
            final = {i["departmentId"]: (i["isLeader"], i["isMainDepartment"])
                     for i in request.body["departments"]}
        elif request.endpoint == "add-department-members":
            final.setdefault(request.body["departmentId"], (False, False))
    return final


def _custom(op: Operation) -> dict[str, Any]:
    return next((dict(r.body["customData"]) for r in op.requests if "customData" in r.body), {})


def _member(ids: tuple[int, ...], *, leaders: set[int] = frozenset(),  # type: ignore[assignment]
            main: int | None = None, userid: str = "u") -> WeComUser:
    return WeComUser(userid=userid, name="n", email="u@example.com", department=ids,
                     is_leader_in_dept=tuple(int(d in leaders) for d in ids),
                     main_department=main if main is not None else ids[0])


def _existing(ids: tuple[int, ...]) -> AuthingUser:
    return AuthingUser(user_id="uid", external_id="u", name="n", email="u@example.com",
                       custom_data=((USER_ID_FIELD, "u"),), memberships=tuple(
                           AuthingMembership(f"a{d}", str(d), "wecom", False, False)
                           for d in ids))


def departments_per_member(actual: AuthingUser | None) -> None:
    ids = tuple(range(2, 2 + WECOM_MAX_DEPARTMENTS))
    (op,) = plan_user(_member(ids, leaders={7, 90}, main=90), actual, POLICY, _index(range(2, 300)))
    _within_authing_limits(op)
    assert not op.unfit
    final = _memberships(op)
    assert set(final) == {f"a{d}" for d in ids}
    assert final["a90"] == (True, True) and final["a7"] == (True, False)
    if actual is None:  # a user created in the same operation is named by externalId
        adds = [r for r in op.requests if r.endpoint == "add-department-members"]
        assert adds and all(r.body["userIds"] == (UserRef("u"),) for r in adds)


def department_ids_at_the_top() -> None:
    ids = tuple(range(TOP_ID - WECOM_MAX_DEPARTMENTS + 1, TOP_ID + 1))
    (op,) = plan_user(_member(ids, main=TOP_ID), None, POLICY, _index(ids))
    _within_authing_limits(op)
    assert set(_memberships(op)) == {f"a{d}" for d in ids}  # the memberships all pass
    assert USER_DEPARTMENTS_FIELD not in _custom(op)  # never a truncated, wrong list
    assert len(op.unfit) == 1 and USER_DEPARTMENTS_FIELD in op.unfit[0]
    assert str(CUSTOM_VALUE_MAX) in op.unfit[0]


def department_ids_that_fit() -> None:
    # 100 nine-digit ids: 999 characters, within the limit: written whole.
    ids = tuple(range(999_999_900, 1_000_000_000))
    (op,) = plan_user(_member(ids), None, POLICY, _index(ids))
    _within_authing_limits(op)
    assert not op.unfit
    assert _custom(op)[USER_DEPARTMENTS_FIELD] == ",".join(map(str, ids))


def longest_userid() -> None:
    userid = "a" + "b" * 63  # 1-64 bytes
    (op,) = plan_user(_member((2,), userid=userid), None, POLICY, _index((2,)))
    _within_authing_limits(op)
    assert _custom(op)[USER_ID_FIELD] == userid


def largest_department_id() -> None:
    dept = WeComDepartment(id=TOP_ID, name="x" * 32, parent_id=TOP_ID - 1)
    (op,) = plan_department(dept, None, POLICY, _index((TOP_ID - 1,)))
    _within_authing_limits(op)
    body = op.requests[0].body
    assert body["openDepartmentId"] == str(TOP_ID)
    assert _custom(op) == {"wechatwork_department_id": str(TOP_ID),
                           "wechatwork_parent_department_id": str(TOP_ID - 1)}


def leader_of_every_department() -> None:
    ids = tuple(range(2, 2 + WECOM_MAX_DEPARTMENTS))
    (op,) = plan_user(_member(ids, leaders=set(ids)), None, POLICY, _index(ids))
    _within_authing_limits(op)
    final = _memberships(op)
    assert set(final) == {f"a{d}" for d in ids}  # every membership, flags as far as they go
    assert sum(leader for leader, _ in final.values()) == SET_DEPARTMENTS_MAX
    assert len(op.unfit) == WECOM_MAX_DEPARTMENTS - SET_DEPARTMENTS_MAX
    assert all("leader flag" in reason for reason in op.unfit)


# (Authing limit the product writes into, its max; WeCom source value, its max; the check)
ROWS: list[Any] = [
    ("set-user-departments.departments (§2.3, §2.7)", 50,
     "member's departments, create (user/create §3.3)", 100,
     lambda: departments_per_member(None)),
    ("set-user-departments.departments (§2.3, §2.7)", 50,
     "member's departments, update from 60 others", 100,
     lambda: departments_per_member(_existing(tuple(range(150, 210))))),
    ("set-user-departments leader/main flags", 50,
     "is_leader_in_dept (user/create §3.3)", 100, leader_of_every_department),
    ("add-department-members.userIds (§2.3, array 50)", 50,
     "one member per call", 1, lambda: departments_per_member(None)),
    ("customData value < 1024 characters (§1.5, §2.6)", 1023,
     "wechatwork_department_ids: 100 ids up to 2^32-1", 1099, department_ids_at_the_top),
    ("customData value < 1024 characters (§1.5, §2.6)", 1023,
     "wechatwork_department_ids: 100 nine-digit ids", 999, department_ids_that_fit),
    ("customData value < 1024 characters (§1.5, §2.6)", 1023,
     "wechatwork_user_id: userid 1-64 bytes (§3.3)", 64, longest_userid),
    ("customData value < 1024 characters (§1.5, §2.6)", 1023,
     "wechatwork_department_id / parent: id up to 2^32-1 (§3.2)", 10, largest_department_id),
]


@pytest.mark.parametrize(("authing_limit", "authing_max", "wecom_source", "wecom_max", "check"),
                         ROWS, ids=[f"{r[0]} {r[1]} vs {r[2]} {r[3]}" for r in ROWS])
def test_wecom_maxima_against_authing_limits(authing_limit: str, authing_max: int,
                                             wecom_source: str, wecom_max: int,
                                             check: Callable[[], None]) -> None:
    """Where WeCom's maximum exceeds Authing's, the check proves the split or the report."""
    assert authing_max in (SET_DEPARTMENTS_MAX, CUSTOM_VALUE_MAX, 50)
    check()
