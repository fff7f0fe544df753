"""Red team: issue 10 §4, "Rules from Authing's guides, each with a clear per-item error and
no WeCom call when it fails", and reference/wecom-platform.md §3.6 (what WeCom refuses;
"Everything else is not retried"). Webhooks pushed by the Authing simulator to a running
receiver; WeCom calls counted on the WeCom simulator."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import ORG, running_stack
from ..test_downstream_e2e import dead_reasons, root, wecom_departments


def test_a_sixteenth_level_department_fails_without_a_wecom_call(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom allows 15 levels (the root is level 1). The 16th is refused by WeCom (60124)
    after the call; the rule is checked only in a reconcile ("an incremental event leaves
    the check to WeCom", downstream.py)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        parent = root(s)
        for level in range(2, 16):  # levels 2..15: all valid
            parent = a.create_department(ORG, f"L{level}", parent)["departmentId"]
            s.settle()
        assert len(wecom_departments(s)) == 14
        creates = s.wecom.faults.stats.writes["department/create"]
        a.create_department(ORG, "L16", parent)
        s.settle()
        assert "15 levels" in dead_reasons(s), dead_reasons(s)
        assert s.wecom.faults.stats.writes["department/create"] == creates, \
            "a department/create was sent for the 16th level"


def test_a_member_with_neither_mobile_nor_email_fails_without_a_wecom_call(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """user/create: "mobile/email二者不能同时为空" (60129; reference §3.3, §3.6)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="nocontact", name="无联系方式")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert dead_reasons(s)
        assert s.wecom.faults.stats.writes["user/create"] == 0, \
            dict(s.wecom.faults.stats.writes)


def test_an_ignored_name_does_not_send_a_nameless_create(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """With name in WECOM_SYNC_DOWNSTREAM_IGNORE_FIELDS, a new member is sent to
    user/create without a name (WeCom 60112): "a member needs a name" must fail with
    no WeCom call (or the name be written on create)."""
    with running_stack(sqlite_url, keys, direction="downstream",
                       downstream_ignore_fields="name") as s:
        a = s.authing.admin
        user = a.create_user(username="nm", name="名字", email="nm@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert "60112" not in dead_reasons(s), dead_reasons(s)


def test_a_taken_department_name_is_not_retried_against_wecom(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """60008 (name exists under the parent) is permanent: §3.6 "Everything else is not
    retried", README "a permanent error goes dead at once". It is retried up to
    WECOM_SYNC_WORKER_MAX_ATTEMPTS times, each a department/create."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_department("研发部", 1, id=50)
        a = s.authing.admin
        a.create_department(ORG, "研发部", root(s))
        s.settle()
        assert "研发部" in dead_reasons(s)
        assert s.wecom.faults.stats.writes["department/create"] == 1, \
            dict(s.wecom.faults.stats.writes)
