"""Deletions in ``both``, end to end (issue 10 §4, §6): a deletion one side made and the
other direction applied comes back as webhooks or callbacks and must not be undone (no
re-create, no write back) nor dead-letter, under every delete policy; and Authing's own
"resigned" follows the delete policy downstream."""

from __future__ import annotations

import pytest

from .conftest import CallbackKeys
from .e2e_stack import ORG, Stack, running_stack
from .test_downstream_e2e import (
    authing_writes,
    dead_reasons,
    root,
    synced_member,
    wecom_departments,
    wecom_id,
    wecom_user,
    writes,
)
from .test_reconcile_e2e import finished, start

POLICIES = ["suspend", "resign", "delete", "ignore"]


def leave_wecom(s: Stack) -> int:
    """A member of 研发部 synced upstream, then deleted in WeCom. Returns the WeCom
    write count taken before the deletion."""
    s.wecom.admin.create_department("研发部", 1, id=2)
    s.wecom.admin.create_user("leaver", "离职者", department=(2,), mobile="13800000016",
                              email="leaver@example.com")
    s.settle()
    before = writes(s)
    s.wecom.admin.delete_user("leaver")
    return before


@pytest.mark.parametrize("policy", POLICIES)
def test_a_member_deleted_in_wecom_is_not_recreated_nor_dead_lettered(
        db_url: str, keys: CallbackKeys, policy: str) -> None:
    with running_stack(db_url, keys, direction="both", user_delete_policy=policy) as s:
        before = leave_wecom(s)
        s.settle(60)
        kept = s.user("leaver")
        assert (kept is None) == (policy == "delete"), kept
        if policy in ("suspend", "resign"):
            assert kept is not None and kept["status"] != "Activated", kept
        assert wecom_user(s, "leaver") is None, "re-created in WeCom"
        assert writes(s) == before, dict(s.wecom.faults.stats.writes)
        assert not dead_reasons(s), dead_reasons(s)
        # A later change of the suspended account in Authing does not bring it back.
        if kept is not None and policy != "ignore":
            s.authing.admin.update_user(kept["userId"], name="离职者（已离开）")
            s.settle(60)
            assert wecom_user(s, "leaver") is None and writes(s) == before
            assert not dead_reasons(s), dead_reasons(s)


def test_a_department_deleted_in_wecom_is_not_recreated(db_url: str,
                                                        keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, direction="both") as s:
        s.wecom.admin.create_department("临时组", 1, id=7)
        s.wecom.admin.create_department("子组", 7, id=8)
        s.settle()
        assert {"7", "8"} <= set(s.departments())
        before = writes(s)
        s.wecom.admin.delete_department(8)
        s.wecom.admin.delete_department(7)
        s.settle(60)
        assert not {"7", "8"} & set(s.departments()), "removed from Authing"
        assert wecom_departments(s) == {}, "re-created in WeCom"
        assert writes(s) == before, dict(s.wecom.faults.stats.writes)
        assert not dead_reasons(s), dead_reasons(s)


@pytest.mark.parametrize("policy, status", [("delete", None), ("suspend", 2), ("resign", 2)])
def test_an_authing_deletion_applied_downstream_is_not_undone_upstream(
        sqlite_url: str, keys: CallbackKeys, policy: str, status: int | None) -> None:
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy=policy) as s:
        s.wecom.switches.callback_api_writes = True  # our WeCom writes are called back
        a = s.authing.admin
        dept = a.create_department(ORG, "销售部", root(s))["departmentId"]
        user = a.create_user(username="gone", name="将离开", email="gone@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": dept}])
        s.settle()
        assert wecom_user(s, "gone") is not None
        a.delete_user(user["userId"])
        s.settle(60)
        before = authing_writes(s)
        member = wecom_user(s, "gone")
        assert (member and member["status"]) == status or (member is None and status is None)
        assert s.user("gone") is None, "re-created in Authing from WeCom's disabled member"
        s.settle()
        assert authing_writes(s) == before
        assert not dead_reasons(s), dead_reasons(s)


def test_an_authing_department_deletion_is_not_undone_upstream(sqlite_url: str,
                                                               keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        a = s.authing.admin
        dept = a.create_department(ORG, "短期项目", root(s))["departmentId"]
        s.settle()
        dept_id = wecom_id(s, dept)
        a.delete_department(ORG, dept)
        s.settle(60)
        assert dept_id not in wecom_departments(s)
        assert str(dept_id) not in s.departments(), "re-created in Authing"
        assert not dead_reasons(s), dead_reasons(s)


@pytest.mark.parametrize("policy, status", [
    ("resign", 2), ("suspend", 2), ("delete", None), ("ignore", 4)])  # 4: left as created
def test_an_authing_resignation_follows_the_delete_policy_downstream(
        sqlite_url: str, keys: CallbackKeys, policy: str, status: int | None) -> None:
    """resign-user removes the memberships and disables the account: the person left. It
    used to dead-letter ("needs at least one department")."""
    with running_stack(sqlite_url, keys, direction="downstream",
                       user_delete_policy=policy) as s:
        a = s.authing.admin
        user = a.create_user(username="quitter", name="辞职者", email="q@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert wecom_user(s, "quitter") is not None
        a.resign_user(user["userId"])
        s.settle(60)
        member = wecom_user(s, "quitter")
        assert (member and member["status"]) == status or (member is None and status is None)
        assert not dead_reasons(s), dead_reasons(s)


def test_a_suspended_authing_user_is_disabled_in_wecom_and_never_created(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="paused", name="暂停", email="p@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        never = a.create_user(username="never", name="从未", email="n@example.com",
                              status="Suspended")
        a.set_user_departments(never["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert wecom_user(s, "never") is None, "a disabled account is not created"
        a.update_user(user["userId"], status="Suspended")
        s.settle()
        assert wecom_user(s, "paused")["status"] == 2  # type: ignore[index]
        a.set_user_departments(user["userId"], [])  # a disabled account without departments
        s.settle()
        member = wecom_user(s, "paused")
        assert member is not None and member["status"] == 2 and member["department"]
        assert not dead_reasons(s), dead_reasons(s)


def test_an_upstream_reconcile_does_not_recreate_an_authing_deletion(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Authing user deleted; downstream disabled its member (suspend). WeCom's disabled
    member is the state downstream wrote: an upstream reconcile does not create an Authing
    account for it."""
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy="suspend") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "销售部", root(s))["departmentId"]
        user = a.create_user(username="gone", name="将离开", email="gone@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": dept}])
        s.settle()
        a.delete_user(user["userId"])
        s.settle()
        assert wecom_user(s, "gone")["status"] == 2  # type: ignore[index]
        run = finished(s, start(s, {"direction": "upstream"}), timeout=120)
        assert run["status"] == "succeeded", run
        assert s.user("gone") is None, "re-created in Authing"
        skipped = [i for i in run["items"] if i["key"] == "gone"]
        assert skipped and skipped[0]["action"] == "skip", skipped
        assert "not re-created" in skipped[0]["error"], skipped
        # A change made in WeCom afterwards is WeCom's: it is applied.
        s.wecom.admin.update_user("gone", name="回来了")
        s.wecom.admin.enable_user("gone")
        s.settle()
        assert s.user("gone") is not None


def test_a_downstream_reconcile_does_not_recreate_a_wecom_deletion_left_by_ignore(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom member deleted; upstream's policy ignore leaves the Authing account as
    upstream wrote it: a downstream reconcile does not create the member again."""
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy="ignore") as s:
        before = leave_wecom(s)
        s.settle()
        for mode in ("create_update", "full"):
            run = finished(s, start(s, {"direction": "downstream", "mode": mode}),
                           timeout=120)
            assert run["status"] == "succeeded", run
        assert wecom_user(s, "leaver") is None and writes(s) == before


@pytest.mark.parametrize("policy", ["suspend", "delete", "ignore"])
def test_a_wecom_leaver_whose_callback_is_lost_is_not_brought_back_by_an_authing_edit(
        sqlite_url: str, keys: CallbackKeys, policy: str) -> None:
    """The conflict rule for deletions: WeCom's ``delete_user`` callback never arrives and
    an Authing admin edits the user. Downstream does not re-create the member (WeCom no
    longer holds what upstream synced from it); it hands upstream a sync of the userid,
    which applies the delete policy to Authing as the callback would have."""
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy=policy) as s:
        uid = synced_member(s, "gone", "走了", "13800000071")
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.delete_user("gone")
        s.authing.admin.update_user(uid, name="改名")
        s.authing.webhooks.drain(30)
        s.settle()
        assert wecom_user(s, "gone") is None, dead_reasons(s)
        account = s.user("gone")
        expected = {"suspend": "Suspended", "delete": None, "ignore": "Activated"}[policy]
        assert (account or {}).get("status") == expected, account
        assert not dead_reasons(s)
