"""A downstream write whose follow-up failed (WeCom took the member or department, the
write-back of its id to Authing was refused): the run says what was written, the link
table keeps the WeCom id, and the next run converges rather than re-creating it."""

from __future__ import annotations

from typing import Any

import httpx

from simulators.authing.endpoint import failure
from simulators.faults import Fault

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack, running_stack
from .test_downstream_e2e import root, wecom_departments, wecom_user, writes
from .test_downstream_reconcile_e2e import down

USER_FIELDS = ("wechatwork_user_id", "wechatwork_department_ids")
DEPARTMENT_FIELDS = ("wechatwork_department_id", "wechatwork_parent_department_id")


def undefine_fields(s: Stack) -> None:
    """The user pool as before ``setup-authing``: no extension fields."""
    with s.authing.state.lock:
        s.authing.state.fields.fields.clear()


def refuse_write_backs(s: Stack, users: int, departments: int) -> None:
    """Authing refuses the next write-backs as it does while the extension fields are
    undefined (a user pool changed behind the service's back)."""
    for endpoint, kind, key, count in (
            ("update-user", "USER", USER_FIELDS[0], users),
            ("update-department", "DEPARTMENT", DEPARTMENT_FIELDS[0], departments)):
        s.authing.faults.arm(Fault("error", count, endpoint=endpoint, payload=failure(
            400, f"customData key {key} is not defined for {kind}: define it with "
                 "set-custom-fields first", 2232)))


def define_fields(s: Stack) -> None:
    s.authing.admin.define_custom_fields("USER", *USER_FIELDS)
    s.authing.admin.define_custom_fields("DEPARTMENT", *DEPARTMENT_FIELDS)


def seed(s: Stack, users: int = 10) -> tuple[str, list[str]]:
    """One department under the root holding ``users`` users (silent: no webhooks)."""
    [dept] = s.authing.admin.seed_departments([
        {"organizationCode": ORG, "name": "下游部", "parentDepartmentId": root(s)}])
    ids = s.authing.admin.seed_users([
        {"username": f"dsuser{i}", "name": f"下游{i}", "email": f"dsuser{i}@example.com",
         "departmentIds": [dept]} for i in range(1, users + 1)])
    return dept, ids


def items(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["kind"], i["key"]): i for i in run["items"]}


def test_a_failed_write_back_is_reported_as_written_and_the_next_run_converges(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False
        dept, _ = seed(s)
        refuse_write_backs(s, users=10, departments=1)
        first = down(s)
        made = {d.name: i for i, d in wecom_departments(s).items()}
        assert "下游部" in made and all(wecom_user(s, f"dsuser{i}") for i in range(1, 11))
        wecom_dept = made["下游部"]
        # What was written is said: the members and the department exist in WeCom.
        assert first["counters"]["created"] == 11, first
        assert first["counters"]["failed"] == 11, first
        assert first["status"] == "partial", first
        for item in first["items"]:
            assert item["action"] == "create" and item["status"] == "failed", item
            assert "set-custom-fields" in (item["error"] or ""), item
            assert "written to wecom" in (item["error"] or ""), item

        second = down(s)
        assert second["status"] == "succeeded", second
        by_key = items(second)
        assert by_key[("department", dept)]["status"] == "applied", by_key
        assert "60008" not in str(second)
        for item in second["items"]:
            assert item["action"] in ("update", "unchanged"), item
        # Only the write-backs: WeCom is not written again.
        assert s.wecom.faults.stats.writes["department/create"] == 1
        assert s.wecom.faults.stats.writes["user/create"] == 10
        assert s.authing.admin.get_user(
            second["items"][-1]["key"])["customData"]["wechatwork_user_id"].startswith(
                "dsuser")
        for i in range(1, 11):
            assert wecom_user(s, f"dsuser{i}")["department"] == [wecom_dept]  # type: ignore[index]

        before = writes(s)
        third = down(s, mode="full")
        assert third["status"] == "succeeded", third
        assert all(i["action"] == "unchanged" for i in third["items"]), third["items"]
        assert writes(s) == before
        assert wecom_dept in wecom_departments(s)


def test_a_webhook_whose_write_back_failed_converges_on_the_next_event(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """The incremental path: the department and the member reach WeCom, their write-backs
    are refused (event dead, link rows kept); a later event about each, or an operator's
    sync-now by WeCom id, only writes the ids back."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        undefine_fields(s)
        a = s.authing.admin
        dept = a.create_department(ORG, "下游部", root(s))["departmentId"]
        s.settle()
        user = a.create_user(username="dsuser1", name="下游1", email="dsuser1@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": dept}])
        s.settle()
        made = {d.name: i for i, d in wecom_departments(s).items()}
        assert "下游部" in made and wecom_user(s, "dsuser1") is not None
        assert "set-custom-fields" in "\n".join(
            e["last_error"] or "" for e in s.events(status="dead"))

        define_fields(s)
        a.update_department(ORG, dept, name="下游中心")  # node-updated
        s.settle()
        assert wecom_departments(s)[made["下游部"]].name == "下游中心"
        reply = httpx.post(f"{s.url}/ops/sync/users/dsuser1", headers=OPS)
        assert reply.status_code in (200, 202), reply.text
        s.settle()
        assert s.wecom.faults.stats.writes["department/create"] == 1
        assert s.wecom.faults.stats.writes["user/create"] == 1
        back = a.get_user(user["userId"])
        assert back is not None and back["externalId"] == "dsuser1"
        assert back["customData"]["wechatwork_user_id"] == "dsuser1"
        with s.authing.state.lock:
            custom = s.authing.state.departments[dept].custom_data
        assert custom.get("wechatwork_department_id") == str(made["下游部"]), custom
        before = writes(s)
        assert down(s)["status"] == "succeeded"
        assert writes(s) == before
