"""WeCom's maxima pass through Authing's per-call limits (issue 12, item 3), end to end.

WeCom allows 100 departments per member and department ids up to 2^32 - 1;
set-user-departments takes 50 departments a call and a customData value fewer than 1024
characters (reference/authing-api.md §2.3, §2.6, §2.7). What can be split is split; what
truly cannot fit fails its item with the reason, and the rest of the entity is applied.
"""

from __future__ import annotations

from typing import Any

from .conftest import CallbackKeys
from .e2e_stack import Stack, running_stack
from .test_reconcile_e2e import finished, start

SIXTY = tuple(range(2, 62))


def _departments(s: Stack, ids: tuple[int, ...]) -> None:
    for dept_id in ids:
        s.wecom.admin.create_department(f"部门{dept_id}", 1, id=dept_id)


def _flags(s: Stack, userid: str) -> tuple[str | None, set[str]]:
    """The main department's and the led departments' WeCom ids."""
    user = s.authing.admin.get_user(userid, "external_id") or {}
    with s.authing.state.lock:
        record = s.authing.state.users[user["userId"]]
        led = {d.open_department_id or "" for d in s.authing.state.departments.values()
               if record.user_id in d.leader_user_ids}
        main = record.main_department_id
    return (s.open_id_of(main) if main else None), led


def test_a_member_of_60_departments_gets_all_60(db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys) as s:
        _departments(s, SIXTY)
        s.settle()
        s.wecom.admin.create_user(
            "many", "多部门", department=SIXTY, email="many@example.com",
            is_leader_in_dept=[1 if d in (5, 60) else 0 for d in SIXTY], main_department=60)
        s.settle()
        assert not s.events(status="dead")
        assert s.user_open_departments("many") == {str(d) for d in SIXTY}
        assert _flags(s, "many") == ("60", {"5", "60"})

        # Leaving 5 and joining none: the replace still removes beyond the first 50.
        fewer = SIXTY[5:]
        s.wecom.admin.update_user("many", department=list(fewer),
                                  is_leader_in_dept=[1 if d == 60 else 0 for d in fewer],
                                  main_department=61)
        s.settle()
        assert not s.events(status="dead")
        assert s.user_open_departments("many") == {str(d) for d in fewer}
        assert _flags(s, "many") == ("61", {"60"})


def test_a_reconcile_writes_60_memberships(db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys) as s:
        departments: list[dict[str, Any]] = [{"id": 1, "name": "总部", "parentid": 0}]
        departments += [{"id": d, "name": f"部门{d}", "parentid": 1} for d in SIXTY]
        users = [{"userid": f"m{i}", "name": f"成员{i}", "department": list(SIXTY),
                  "email": f"m{i}@example.com", "main_department": 2 + i} for i in range(3)]
        s.wecom.admin.load(departments, users)
        run = finished(s, start(s))
        assert run["status"] == "succeeded", [i for i in run["items"] if i["error"]][:2]
        for i in range(3):
            assert s.user_open_departments(f"m{i}") == {str(d) for d in SIXTY}
            assert _flags(s, f"m{i}")[0] == str(2 + i)


def test_what_cannot_fit_fails_the_item_and_the_rest_is_applied(db_url: str,
                                                                 keys: CallbackKeys) -> None:
    # 100 departments with ten-digit ids: their comma-joined list (the contract's
    # wechatwork_department_ids) is 1099 characters, more than Authing keeps in a value.
    top = 2**32 - 1
    ids = tuple(range(top - 99, top + 1))
    with running_stack(db_url, keys) as s:
        _departments(s, ids)
        s.settle()
        s.wecom.admin.create_user("wide", "很多部门", department=ids, email="wide@example.com",
                                  main_department=top)
        s.settle()
        dead = s.events(status="dead")
        assert [e["entity_key"] for e in dead] == ["wide"]
        reason = dead[0]["last_error"]
        assert "wechatwork_department_ids not written" in reason and "1023" in reason
        user = s.user("wide")
        assert user is not None and user["name"] == "很多部门"
        assert user["customData"]["wechatwork_user_id"] == "wide"
        assert "wechatwork_department_ids" not in user["customData"]
        assert s.user_open_departments("wide") == {str(d) for d in ids}
        assert _flags(s, "wide")[0] == str(top)

        run = finished(s, start(s))
        assert run["status"] == "partial"
        failed = [i for i in run["items"] if i["status"] == "failed"]
        assert [(i["key"], "wechatwork_department_ids" in i["error"]) for i in failed] == [
            ("wide", True)]
        assert run["counters"]["failed"] == 1
