"""Downstream, end to end over real HTTP: the Authing simulator pushes webhooks to a
running receiver, whose worker re-reads Authing and writes to the WeCom simulator.
Assertions are on the WeCom simulator's state and its call counters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from simulators.wecom.errors import ApiError

from .conftest import CallbackKeys
from .e2e_stack import ORG, Stack, running_stack


@contextmanager
def downstream(url: str, keys: CallbackKeys, **settings: Any) -> Iterator[Stack]:
    settings.setdefault("direction", "downstream")
    with running_stack(url, keys, **settings) as s:
        yield s


def root(s: Stack) -> str:
    with s.authing.state.lock:
        return s.authing.state.orgs[ORG].root_id


def wecom_user(s: Stack, userid: str) -> dict[str, Any] | None:
    with s.wecom.state.lock:
        try:
            return s.wecom.state.users.find(userid).view(withhold_sensitive=False)
        except ApiError:
            return None


def wecom_departments(s: Stack) -> dict[int, Any]:
    with s.wecom.state.lock:
        return {d.id: d for d in s.wecom.state.departments.walk() if d.id != 1}


def wecom_id(s: Stack, department_id: str) -> int:
    with s.authing.state.lock:
        custom = dict(s.authing.state.departments[department_id].custom_data)
    written = custom.get("wechatwork_department_id")
    assert written is not None and str(written).isdigit(), "the WeCom id is written back"
    return int(written)


def writes(s: Stack) -> int:
    return int(s.wecom.faults.stats.total_writes)


def test_every_event_type_reaches_wecom(db_url: str, keys: CallbackKeys) -> None:
    with downstream(db_url, keys) as s:
        a = s.authing.admin
        rd = a.create_department(ORG, "研发部", root(s))["departmentId"]
        s.settle()
        rd_id = wecom_id(s, rd)
        assert wecom_departments(s)[rd_id].name == "研发部"

        user = a.create_user(username="lisi", name="李四", email="lisi@example.com",
                             phone="13900000001")
        a.set_user_departments(user["userId"], [{"departmentId": rd}])
        s.settle()
        member = wecom_user(s, "lisi")
        assert member is not None and member["name"] == "李四"
        assert member["department"] == [rd_id] and member["email"] == "lisi@example.com"
        assert member["mobile"] == "13900000001"
        back = a.get_user(user["userId"])
        assert back is not None and back["externalId"] == "lisi"
        assert back["customData"]["wechatwork_user_id"] == "lisi"

        a.update_user(user["userId"], name="李四光")  # user:updated
        s.settle()
        assert wecom_user(s, "lisi")["name"] == "李四光"  # type: ignore[index]

        a.update_department(ORG, rd, name="研发中心")  # node-updated
        qa = a.create_department(ORG, "测试部", root(s))["departmentId"]  # node-added
        s.settle()
        assert wecom_departments(s)[rd_id].name == "研发中心"
        qa_id = wecom_id(s, qa)
        a.update_department(ORG, qa, parentDepartmentId=rd)  # node-moved
        s.settle()
        assert wecom_departments(s)[qa_id].parentid == rd_id

        a.set_user_departments(user["userId"], [{"departmentId": qa}])  # member-added/removed
        s.settle()
        assert wecom_user(s, "lisi")["department"] == [qa_id]  # type: ignore[index]

        a.delete_user(user["userId"])  # user:deleted, default policy resign: disabled
        s.settle()
        gone = wecom_user(s, "lisi")
        assert gone is not None and gone["status"] == 2  # 已禁用

        temp = a.create_department(ORG, "临时组", qa)["departmentId"]
        s.settle()
        temp_id = wecom_id(s, temp)
        assert wecom_departments(s)[temp_id].parentid == qa_id
        a.delete_department(ORG, temp)  # node-deleted
        s.settle()
        assert temp_id not in wecom_departments(s)
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def with_member(s: Stack) -> tuple[str, str]:
    """An Authing department and user, created in WeCom by downstream: their ids."""
    a = s.authing.admin
    rd = a.create_department(ORG, "销售部", root(s))["departmentId"]
    user = a.create_user(username="wangwu", name="王五", email="wangwu@example.com")
    a.set_user_departments(user["userId"], [{"departmentId": rd}])
    s.settle()
    assert wecom_user(s, "wangwu") is not None
    return rd, user["userId"]


def authing_writes(s: Stack) -> int:
    return int(s.authing.stats.total_writes)


def test_a_wecom_change_comes_back_as_webhooks_and_writes_nothing_to_wecom(
        db_url: str, keys: CallbackKeys) -> None:
    with downstream(db_url, keys, direction="both") as s:
        admin = s.wecom.admin
        admin.create_department("研发部", 1, id=2)
        admin.create_department("后端组", 2, id=3)
        admin.create_user("zhangsan", "张三", department=(2, 3), mobile="13800000000",
                          email="zhangsan@example.com")
        s.settle()
        assert s.user("zhangsan") is not None  # upstream applied it
        assert s.authing.webhooks.received("user:created"), "Authing called us back"
        admin.update_user("zhangsan", name="张三丰", department=[3])
        admin.update_department(3, name="后端平台组")
        s.settle()
        assert s.user("zhangsan")["name"] == "张三丰"  # type: ignore[index]
        assert writes(s) == 0, s.wecom.faults.stats
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def test_an_authing_change_called_back_by_wecom_writes_nothing_to_authing(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True  # another app sees our writes
        a = s.authing.admin
        _, user_id = with_member(s)
        before = authing_writes(s)  # the write-backs of the ids WeCom gave
        a.update_user(user_id, name="王五二")
        s.settle()
        assert wecom_user(s, "wangwu")["name"] == "王五二"  # type: ignore[index]
        assert s.wecom.pusher.deliveries, "WeCom called our writes back"
        assert authing_writes(s) == before, s.authing.stats
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


@pytest.mark.parametrize("callbacks", [False, True], ids=["no-callback", "callback"])
def test_a_change_on_both_sides_at_once_converges_without_oscillating(
        db_url: str, keys: CallbackKeys, callbacks: bool) -> None:
    with downstream(db_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = callbacks
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("zhaoliu", "赵六", department=(2,), mobile="13800000006")
        s.settle()
        uid = s.user("zhaoliu")["userId"]  # type: ignore[index]
        w0, a0 = writes(s), authing_writes(s)
        for round_ in range(3):
            s.wecom.admin.update_user("zhaoliu", name=f"企微-{round_}")
            s.authing.admin.update_user(uid, name=f"认证-{round_}")
            s.settle()
            wecom_name = wecom_user(s, "zhaoliu")["name"]  # type: ignore[index]
            assert s.user("zhaoliu")["name"] == wecom_name  # type: ignore[index]
            assert wecom_name in (f"企微-{round_}", f"认证-{round_}")
        # Bounded: each conflict costs at most a couple of writes per side, then quiet.
        assert writes(s) - w0 <= 6 and authing_writes(s) - a0 <= 6
        quiet_w, quiet_a = writes(s), authing_writes(s)
        s.settle()
        assert (writes(s), authing_writes(s)) == (quiet_w, quiet_a)
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def dead_reasons(s: Stack) -> str:
    return "\n".join(e["last_error"] or "" for e in s.events(status="dead"))


def test_records_wecom_would_refuse_fail_per_item_without_a_wecom_call(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with downstream(sqlite_url, keys) as s:
        a = s.authing.admin
        bad = a.create_department(ORG, "财务*部", root(s))["departmentId"]
        spaced = a.create_department(ORG, " 市场_部 A ", root(s))["departmentId"]
        s.settle()
        assert "holds *" in dead_reasons(s)
        assert wecom_departments(s)[wecom_id(s, spaced)].name == "市场_部 A"
        assert s.wecom.faults.stats.writes["department/create"] == 1  # the good one only

        nameless = a.create_user(username="noname", email="noname@example.com")
        a.set_user_departments(nameless["userId"], [{"departmentId": spaced}])
        chinese = a.create_user(username="cn", name="中文", externalId="张三")
        a.set_user_departments(chinese["userId"], [{"departmentId": spaced}])
        s.settle()
        reasons = dead_reasons(s)
        assert "needs a name" in reasons
        assert "may hold only letters, digits and _-@." in reasons
        assert s.wecom.faults.stats.writes["user/create"] == 0
        assert bad  # nothing about it reached WeCom


def test_a_taken_mobile_names_the_field(sqlite_url: str, keys: CallbackKeys) -> None:
    with downstream(sqlite_url, keys) as s:
        s.wecom.admin.create_user("holder", "占用者", department=(1,), mobile="13700000000")
        a = s.authing.admin
        user = a.create_user(username="newbie", name="新人", phone="13700000000")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        reason = dead_reasons(s)
        assert "another WeCom member already has this mobile '13700000000'" in reason
        assert wecom_user(s, "newbie") is None


def test_update_policy_none_creates_only(sqlite_url: str, keys: CallbackKeys) -> None:
    with downstream(sqlite_url, keys, downstream_update_policy="none") as s:
        a = s.authing.admin
        user = a.create_user(username="only", name="仅创建", email="only@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert wecom_user(s, "only")["name"] == "仅创建"  # type: ignore[index]
        a.update_user(user["userId"], name="改名")
        s.settle()
        assert wecom_user(s, "only")["name"] == "仅创建"  # type: ignore[index]
        assert s.wecom.faults.stats.writes["user/update"] == 0


def test_ignored_fields_are_never_written(sqlite_url: str, keys: CallbackKeys) -> None:
    with downstream(sqlite_url, keys, downstream_ignore_fields="mobile,name") as s:
        s.wecom.admin.create_user("kept", "企微名", department=(1,), email="kept@example.com")
        a = s.authing.admin
        user = a.create_user(username="kept", name="认证名", externalId="kept",
                             phone="13600000000", email="kept2@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        member = wecom_user(s, "kept")
        assert member is not None and member["name"] == "企微名" and member["mobile"] == ""
        assert member["email"] == "kept2@example.com"


@pytest.mark.parametrize("policy, expected", [
    ("delete", None), ("suspend", 2), ("resign", 2), ("ignore", 1)])
def test_a_deleted_authing_user_follows_the_delete_policy(
        sqlite_url: str, keys: CallbackKeys, policy: str, expected: int | None) -> None:
    with downstream(sqlite_url, keys, user_delete_policy=policy) as s:
        s.wecom.admin.create_user("leaver", "离开", department=(1,), email="l@example.com")
        a = s.authing.admin
        user = a.create_user(username="leaver", name="离开", externalId="leaver",
                             email="l@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        a.delete_user(user["userId"])
        s.settle()
        member = wecom_user(s, "leaver")
        assert (member and member["status"]) == expected or (member is None and expected is None)
        assert not s.events(status="dead"), dead_reasons(s)


def test_a_tree_wide_authing_change_starts_a_downstream_reconcile(
        sqlite_url: str, keys: CallbackKeys) -> None:
    import httpx

    from .e2e_stack import HOOK_SECRET, OPS

    with downstream(sqlite_url, keys) as s:
        def post(source: str) -> None:
            reply = httpx.post(f"{s.url}/authing/webhook", headers={
                "x-authing-webhook-secret": HOOK_SECRET}, json={
                "eventName": "organization:tree-updated",
                "data": {"organization": {"id": "o1"}, "source": source}})
            assert reply.status_code == 200, reply.text

        post("WECHATWORK")  # an import from WeCom itself: not pushed back
        s.settle()
        runs = httpx.get(f"{s.url}/ops/runs", headers=OPS).json()["runs"]
        assert runs == []
        post("EXCEL")
        s.settle()
        runs = httpx.get(f"{s.url}/ops/runs", headers=OPS).json()["runs"]
        assert [(r["direction"], r["trigger"]) for r in runs] == [
            ("downstream", "organization:tree-updated")]


def synced_member(s: Stack, userid: str, name: str, mobile: str) -> str:
    """A member made in WeCom's department 2 (created here) and synced upstream (``both``):
    answers its Authing user id."""
    s.wecom.admin.create_department("A", 1, id=2)
    s.wecom.admin.create_user(userid, name, department=(2,), mobile=mobile,
                              email=f"{userid}@example.com")
    s.settle()
    return str(s.user(userid)["userId"])  # type: ignore[index]


def test_a_move_under_a_former_child_whose_webhook_was_lost(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    """Authing: A > B. B moves to the root (its webhook lost), then A moves under B. In
    WeCom B is still under A, so A's move answers 60010 (reference §3.6); the source's
    tree says B goes first, and both end where Authing has them."""
    with downstream(sqlite_url, keys) as s:
        a = s.authing.admin
        first = a.create_department(ORG, "甲", root(s))["departmentId"]
        s.settle()  # (B's event would otherwise create A too, racing A's own event)
        second = a.create_department(ORG, "乙", first)["departmentId"]
        s.settle()
        hooks = list(s.authing.webhooks.hooks.values())
        for hook in hooks:
            hook.enabled = False
        a.update_department(ORG, second, parentDepartmentId=root(s))
        for hook in hooks:
            hook.enabled = True
        a.update_department(ORG, first, parentDepartmentId=second)
        s.settle()
        depts = wecom_departments(s)
        assert depts[wecom_id(s, second)].parentid == 1, dead_reasons(s)
        assert depts[wecom_id(s, first)].parentid == wecom_id(s, second), dead_reasons(s)
        assert not dead_reasons(s), dead_reasons(s)
