"""Downstream when WeCom shows less than it holds (issue 10 §5): fields withheld on read
(mobile, email, gender for apps created after 2022-06-20 and 代开发 apps) and detail reads
refused (48009, 60020). Unknown is not different: a no-op makes 0 WeCom writes; a real
Authing change still reaches WeCom, judged against the link table's record of our last
write. Over real HTTP with both simulators."""

from __future__ import annotations

import pytest

from .conftest import CallbackKeys
from .e2e_stack import Stack, running_stack
from .test_downstream_e2e import root, synced_member, wecom_user, writes
from .test_downstream_reconcile_e2e import down, seed_authing


def created(s: Stack, username: str, **profile: str) -> str:
    a = s.authing.admin
    user = a.create_user(username=username, **profile)
    a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
    s.settle()
    return str(user["userId"])


def test_a_mobile_and_email_change_reaches_wecom_when_wecom_withholds_them(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        user = created(s, "mob", name="手机", phone="13900000001", email="mob@example.com")
        s.wecom.switches.withhold_sensitive = True
        s.authing.admin.update_user(user, phone="13900000002", email="mob2@example.com",
                                    name="手机二")
        s.settle()
        member = wecom_user(s, "mob")
        assert member is not None and member["name"] == "手机二"
        assert (member["mobile"], member["email"]) == ("13900000002", "mob2@example.com")


@pytest.mark.parametrize("switch", ["withhold_sensitive", "restricted_reads"])
@pytest.mark.parametrize(("change", "field", "value"), [
    ({"email": "new@example.com"}, "email", "new@example.com"),
    ({"gender": "F"}, "gender", "2"),
    ({"phone": "61234567", "phoneCountryCode": "+852"}, "mobile", "+852-61234567"),
])
def test_a_withheld_field_changed_alone_reaches_wecom(
        sqlite_url: str, keys: CallbackKeys, switch: str, change: dict[str, str],
        field: str, value: str) -> None:
    """Only a field WeCom does not show changes: nothing visible differs, and the event is
    still applied (and the next no-op event writes nothing)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        user = created(s, "only", name="单改", phone="13900000003", email="o@example.com")
        setattr(s.wecom.switches, switch, True)
        s.authing.admin.update_user(user, **change)
        s.settle()
        setattr(s.wecom.switches, switch, False)
        assert wecom_user(s, "only")[field] == value  # type: ignore[index]
        setattr(s.wecom.switches, switch, True)
        before = writes(s)
        s.authing.admin.update_user(user, nickname="noise")  # no field WeCom holds
        s.settle()
        assert writes(s) == before, dict(s.wecom.faults.stats.writes)


def test_a_missed_mobile_change_is_repaired_by_the_reconcile_when_wecom_withholds_it(
        db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, direction="downstream") as s:
        ids = seed_authing(s, 4, 2)
        assert down(s)["status"] == "succeeded"
        s.settle()
        with s.authing.state.lock:  # the webhook was lost
            s.authing.state.users[ids[0]].profile["phone"] = "13700000099"
        s.wecom.switches.withhold_sensitive = True
        run = down(s)
        assert run["status"] == "succeeded", run
        assert wecom_user(s, "user0000")["mobile"] == "13700000099", run["counters"]  # type: ignore[index]
        before = writes(s)
        assert down(s)["status"] == "succeeded"
        assert writes(s) == before, "the run after the repair is a no-op"


@pytest.mark.parametrize("switch", ["withhold_sensitive", "restricted_reads"])
def test_a_no_op_reconcile_makes_no_wecom_write_when_wecom_shows_less(
        db_url: str, keys: CallbackKeys, switch: str) -> None:
    with running_stack(db_url, keys, direction="downstream") as s:
        seed_authing(s, 6, 2)
        assert down(s)["status"] == "succeeded"
        s.settle()
        setattr(s.wecom.switches, switch, True)
        before = writes(s)
        run = down(s)
        assert run["status"] == "succeeded", run
        assert writes(s) == before, (run["counters"], dict(s.wecom.faults.stats.writes))


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


@pytest.mark.parametrize(("change", "field", "value"), [
    ({"name": "读受限二"}, "name", "读受限二"),
    ({"email": "rr2@example.com"}, "email", "rr2@example.com"),
])
def test_a_change_event_is_applied_when_wecom_refuses_reads(
        db_url: str, keys: CallbackKeys, change: dict[str, str], field: str,
        value: str) -> None:
    """Planned against the link table's record, not retried for hours on 48009."""
    with running_stack(db_url, keys, direction="downstream") as s:
        user = created(s, "rr", name="读受限", email="rr@example.com")
        s.wecom.switches.restricted_reads = True
        s.authing.admin.update_user(user, **change)
        s.settle()
        assert wecom_user(s, "rr")[field] == value  # type: ignore[index]


def test_a_gender_set_in_authing_reaches_a_wecom_member_whose_gender_is_unset(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom's gender "0" (未定义) is a known value, not a withheld one."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        user = created(s, "gd", name="性别", email="gd@example.com")
        assert wecom_user(s, "gd")["gender"] == "0"  # type: ignore[index]
        s.authing.admin.update_user(user, gender="M")
        s.settle()
        assert wecom_user(s, "gd")["gender"] == "1"  # type: ignore[index]


@pytest.mark.parametrize("change", ["email", "resign"])
def test_an_event_about_a_member_upstream_synced_is_applied_when_wecom_refuses_reads(
        sqlite_url: str, keys: CallbackKeys, change: str) -> None:
    """``both``: downstream never wrote this member, so upstream's record stands in for
    ours (every field Authing holds is written once) rather than the event being
    retried on 48009; a resignation disables it (the default policy)."""
    with running_stack(sqlite_url, keys, direction="both") as s:
        uid = synced_member(s, "up", "上游", "13800000092")
        s.wecom.switches.restricted_reads = True
        if change == "email":
            s.authing.admin.update_user(uid, email="up2@example.com")
        else:
            s.authing.admin.resign_user(uid)
        s.authing.webhooks.drain(30)
        s.settle()
        member = wecom_user(s, "up")
        assert member is not None
        if change == "email":
            assert (member["email"], member["status"]) == ("up2@example.com", 1), member
        else:
            assert member["status"] == 2, member
