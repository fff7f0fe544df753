"""Red team: ``both`` directions with a change on each side of one entity while a
delivery is delayed (issue 10 §6; README "Conflict rule"; mission: "no former employee
stays active", "right under any order, delay or loss"). Expected to fail until fixed."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import Stack, running_stack
from ..test_downstream_e2e import (
    authing_writes,
    dead_reasons,
    synced_member,
    wecom_user,
    writes,
)


def quiet(s: Stack) -> None:
    s.settle(60)
    counts = (writes(s), authing_writes(s))
    s.settle()
    assert (writes(s), authing_writes(s)) == counts, "still writing"


def test_a_wecom_leaver_is_not_brought_back_by_an_authing_edit_made_meanwhile(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Mission "no former employee stays active" and README's conflict rule ("per field
    one owner at a time"; a delete is not a field Authing owns): a member leaves WeCom
    (``delete_user``) and, before its callback arrives, an Authing admin edits the same
    user's name. Once everything is delivered, the leaver must not be an active WeCom
    member again (downstream re-creating a member WeCom deleted), and the Authing account
    must not stay active."""
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        uid = synced_member(s, "leaver", "离职者", "13800000011")
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.delete_user("leaver")
        s.authing.admin.update_user(uid, name="离职者改名")
        s.authing.webhooks.drain(30)
        s.settle()
        s.wecom.pusher.release()
        quiet(s)
        member = wecom_user(s, "leaver")
        account = s.user("leaver")
        assert member is None or member["status"] == 2, (member, account, dead_reasons(s))
        assert account is None or account["status"] != "Activated", (member, account)



def test_a_department_wecom_removed_is_not_brought_back_by_an_authing_rename(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """The same race for a department (README conflict rule; mission "nothing is lost"
    read the other way: nothing deleted comes back unasked): WeCom removes an empty
    department and, before its ``delete_party`` callback arrives, an Authing admin renames
    it. Once all is delivered, WeCom must not hold that department again (under the old
    or the new name) while Authing keeps it: both sides agree it is gone."""
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("旧组", 1, id=2)
        s.settle()
        with s.authing.state.lock:
            key = next(d.department_id for d in s.authing.state.departments.values()
                       if d.open_department_id == "2")
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.delete_department(2)
        s.authing.admin.update_department("wecom", key, name="新组")
        s.authing.webhooks.drain(30)
        s.settle()
        s.wecom.pusher.release()
        quiet(s)
        in_wecom = sorted(d.name for d in s.wecom.state.departments.walk() if d.id != 1)
        in_authing = sorted(d.name for d in s.departments().values()
                            if d.open_department_id != "1")
        assert in_wecom == in_authing == [], (in_wecom, in_authing, dead_reasons(s))
