"""Issue 10 §4, "Rules from Authing's guides, each with a clear per-item error and no WeCom
call when it fails", and reference/wecom-platform.md §3.6 (what WeCom refuses; "Everything
else is not retried"). Webhooks pushed by the Authing simulator to a running receiver;
WeCom calls counted on the WeCom simulator."""

from __future__ import annotations

from .conftest import CallbackKeys
from .e2e_stack import ORG, running_stack
from .test_downstream_e2e import dead_reasons, root, wecom_departments, wecom_user
from .test_downstream_reconcile_e2e import down


def test_a_sixteenth_level_department_fails_without_a_wecom_call(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom allows 15 levels (the root is level 1): an incremental event is checked too."""
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
    """The ignore list keeps a field from updates; a create carries the name WeCom
    requires (60112 otherwise)."""
    with running_stack(sqlite_url, keys, direction="downstream",
                       downstream_ignore_fields="name") as s:
        a = s.authing.admin
        user = a.create_user(username="nm", name="名字", email="nm@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert not dead_reasons(s), dead_reasons(s)
        assert wecom_user(s, "nm")["name"] == "名字"  # type: ignore[index]
        a.update_user(user["userId"], name="新名字")
        s.settle()
        assert wecom_user(s, "nm")["name"] == "名字"  # type: ignore[index]


def test_ignored_mobile_and_email_still_let_a_member_be_created(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10's own example (a 代开发 app): user/create needs a mobile or an email
    (60129), so the create carries them; later updates never do."""
    with running_stack(sqlite_url, keys, direction="downstream",
                       downstream_ignore_fields="mobile,email") as s:
        a = s.authing.admin
        user = a.create_user(username="dk", name="代开发", email="dk@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert not dead_reasons(s), dead_reasons(s)
        assert wecom_user(s, "dk")["email"] == "dk@example.com"  # type: ignore[index]
        a.update_user(user["userId"], email="dk2@example.com", name="代开发二")
        s.settle()
        member = wecom_user(s, "dk")
        assert member is not None and (member["name"], member["email"]) == (
            "代开发二", "dk@example.com")


def test_a_move_below_the_fifteenth_level_fails_without_a_wecom_call(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Another instance of the level rule: a department with a child, moved under the
    14th level, would put the child at level 16."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        parent = root(s)
        for level in range(2, 15):  # levels 2..14
            parent = a.create_department(ORG, f"L{level}", parent)["departmentId"]
        top = a.create_department(ORG, "上", root(s))["departmentId"]
        a.create_department(ORG, "下", top)
        s.settle()
        updates = s.wecom.faults.stats.writes["department/update"]
        a.update_department(ORG, top, parentDepartmentId=parent)
        s.settle()
        assert "level 16" in dead_reasons(s), dead_reasons(s)
        assert s.wecom.faults.stats.writes["department/update"] == updates


def test_a_rename_to_a_taken_department_name_is_not_retried(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_department("财务部", 1, id=60)
        a = s.authing.admin
        dept = a.create_department(ORG, "市场部", root(s))["departmentId"]
        s.settle()
        updates = s.wecom.faults.stats.writes["department/update"]
        a.update_department(ORG, dept, name="财务部")
        s.settle()
        assert "财务部" in dead_reasons(s), dead_reasons(s)
        assert s.wecom.faults.stats.writes["department/update"] == updates + 1


def test_a_taken_department_name_is_not_retried_against_wecom(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """60008 (name exists under the parent) is permanent: §3.6 "Everything else is not
    retried"; the error names the department and the holder."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_department("研发部", 1, id=50)
        a = s.authing.admin
        a.create_department(ORG, "研发部", root(s))
        s.settle()
        assert "研发部" in dead_reasons(s)
        assert "WeCom department 50 holds it" in dead_reasons(s), dead_reasons(s)
        assert s.wecom.faults.stats.writes["department/create"] == 1, \
            dict(s.wecom.faults.stats.writes)


def test_two_authing_users_whose_userids_differ_in_case_do_not_share_a_member(
        db_url: str, keys: CallbackKeys) -> None:
    """WeCom's userid uniqueness "忽略大小写" (reference §3.3): ``bob`` and ``BOB`` are one
    member; the second Authing user is a per-item conflict naming the holder, and the
    reconcile does not rewrite the member either."""
    with running_stack(db_url, keys, direction="downstream") as s:
        a = s.authing.admin
        first = a.create_user(username="bob1", externalId="bob", name="甲",
                              email="bob1@example.com")
        a.set_user_departments(first["userId"], [{"departmentId": root(s)}])
        s.settle()
        second = a.create_user(username="bob2", externalId="BOB", name="乙",
                               email="bob2@example.com")
        a.set_user_departments(second["userId"], [{"departmentId": root(s)}])
        s.settle()
        member = s.wecom.state.users.find("bob").view(withhold_sensitive=False)
        assert (member["name"], member["email"]) == ("甲", "bob1@example.com"), member
        assert "userid" in dead_reasons(s), dead_reasons(s)
        updates = s.wecom.faults.stats.writes["user/update"]
        run = down(s)
        assert run["status"] in ("partial", "succeeded", "failed")
        assert s.wecom.faults.stats.writes["user/update"] == updates, run["counters"]
