"""Red team: ``both`` directions with a change on each side of one entity while a
delivery is delayed (issue 10 §6; README "Conflict rule"; mission: "no former employee
stays active", "right under any order, delay or loss"). Expected to fail until fixed."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import Stack, running_stack
from ..test_downstream_e2e import authing_writes, dead_reasons, wecom_user, writes


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
        s.wecom.admin.create_department("A", 1, id=2)
        s.wecom.admin.create_user("leaver", "离职者", department=(2,),
                                  mobile="13800000011", email="leaver@example.com")
        s.settle()
        uid = s.user("leaver")["userId"]  # type: ignore[index]
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
