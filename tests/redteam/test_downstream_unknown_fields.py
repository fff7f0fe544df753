"""Red team: downstream when WeCom withholds fields (mobile, email: apps created after
2022-06-20, 代开发) or refuses detail reads (48009: new server IPs since 2022-08-15).
Issue 10 §5: withheld fields are "unknown, not different" *for a no-op*, and with reads
refused "the actual side comes from simplelist/list_id ... and from the link table's record
of what we last wrote". A real Authing change must still reach WeCom; here it is dropped
and the run or event says unchanged/done."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import running_stack
from ..test_downstream_e2e import root, wecom_user
from ..test_downstream_reconcile_e2e import down, seed_authing


def test_a_mobile_and_email_change_reaches_wecom_when_wecom_withholds_them(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="mob", name="手机", phone="13900000001",
                             email="mob@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        s.wecom.switches.withhold_sensitive = True
        a.update_user(user["userId"], phone="13900000002", email="mob2@example.com",
                      name="手机二")
        s.settle()
        member = wecom_user(s, "mob")
        assert member is not None and member["name"] == "手机二"
        assert (member["mobile"], member["email"]) == ("13900000002", "mob2@example.com")


def test_a_missed_mobile_change_is_repaired_by_the_reconcile_when_wecom_withholds_it(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        ids = seed_authing(s, 4, 2)
        assert down(s)["status"] == "succeeded"
        s.settle()
        with s.authing.state.lock:  # the webhook was lost
            s.authing.state.users[ids[0]].profile["phone"] = "13700000099"
        s.wecom.switches.withhold_sensitive = True
        run = down(s)
        assert run["status"] == "succeeded", run
        assert wecom_user(s, "user0000")["mobile"] == "13700000099", run["counters"]  # type: ignore[index]


def test_a_missed_name_change_is_repaired_by_the_reconcile_when_wecom_refuses_reads(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        ids = seed_authing(s, 4, 2)
        assert down(s)["status"] == "succeeded"
        s.settle()
        with s.authing.state.lock:  # the webhook was lost
            s.authing.state.users[ids[0]].profile["name"] = "改名了"
        s.wecom.switches.restricted_reads = True  # 48009 on user/get, user/list
        run = down(s)
        assert run["status"] == "succeeded", run
        assert wecom_user(s, "user0000")["name"] == "改名了", run["counters"]  # type: ignore[index]


def test_a_name_change_event_is_applied_when_wecom_refuses_reads(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Today the event fails with 48009 on user/get and is retried once a minute (until
    the retry window ends, then dead): the change never reaches WeCom."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="rr", name="读受限", email="rr@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        s.wecom.switches.restricted_reads = True
        a.update_user(user["userId"], name="读受限二")
        s.settle()
        assert wecom_user(s, "rr")["name"] == "读受限二"  # type: ignore[index]


def test_a_gender_set_in_authing_reaches_a_wecom_member_whose_gender_is_unset(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom's gender "0" (未定义) is read as unknown, so Authing's later "M" is never
    written (0 WeCom writes), though gender is a field downstream writes (README ignore
    list: name, mobile, email, gender, department, enable)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="gd", name="性别", email="gd@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert wecom_user(s, "gd")["gender"] == "0"  # type: ignore[index]
        a.update_user(user["userId"], gender="M")
        s.settle()
        assert wecom_user(s, "gd")["gender"] == "1"  # type: ignore[index]
