"""``POST /ops/sync/users/{userid}`` and ``/ops/sync/departments/{id}`` (the console's
"Sync now") run in the configured direction(s), end to end: downstream finds the Authing
entity for the WeCom key and pushes it; ``both`` runs upstream, then downstream; the
event's outcome says what each direction did."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack, running_stack
from .test_downstream_e2e import authing_writes, root, wecom_id, wecom_user


def lose_webhooks(s: Stack) -> None:
    for hook in s.authing.webhooks.hooks.values():
        hook.enabled = False


def sync_now(s: Stack, path: str) -> dict[str, Any]:
    reply = httpx.post(f"{s.url}/ops/sync/{path}", headers=OPS)
    assert reply.status_code == 202, reply.text
    event_id = reply.json()["event_id"]
    s.settle()
    event = httpx.get(f"{s.url}/ops/events/{event_id}", headers=OPS).json()
    assert event["status"] == "done", event
    return event  # type: ignore[no-any-return]


def outcome(event: dict[str, Any]) -> str:
    return str(event["outcome"])


def test_downstream_pushes_the_user_found_by_external_id(sqlite_url: str,
                                                         keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        lose_webhooks(s)
        a = s.authing.admin
        user = a.create_user(username="someone", externalId="ext-01", name="外部编号",
                             email="ext@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        event = sync_now(s, "users/ext-01")
        assert wecom_user(s, "ext-01") is not None and wecom_user(s, "someone") is None
        text = outcome(event)
        assert text.startswith("downstream:") and "create" in text, text
        assert "upstream" not in text


def test_downstream_does_not_write_wecom_into_authing(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    """With ``downstream`` only, WeCom's member is never written to Authing (it used to
    run the upstream direction and read "done")."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_user("wonly", "只在企微", department=(1,), email="w@example.com")
        s.settle()
        before = authing_writes(s)
        event = sync_now(s, "users/wonly")
        assert s.user("wonly") is None and authing_writes(s) == before, outcome(event)


def test_downstream_pushes_the_user_found_by_the_username_rule(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        lose_webhooks(s)  # the operator syncs it by hand
        a = s.authing.admin
        user = a.create_user(username="syncme", name="同步我", email="syncme@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        event = sync_now(s, "users/syncme")
        assert wecom_user(s, "syncme") is not None, outcome(event)
        assert a.get_user(user["userId"])["externalId"] == "syncme"  # type: ignore[index]


def test_downstream_with_no_authing_user_says_so(sqlite_url: str,
                                                 keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_user("wonly", "只在企微", department=(1,), email="w@example.com")
        s.settle()
        before = authing_writes(s)
        event = sync_now(s, "users/wonly")
        assert "nothing to push" in outcome(event), outcome(event)
        assert s.user("wonly") is None and authing_writes(s) == before


def test_downstream_pushes_a_department_named_by_its_wecom_id(sqlite_url: str,
                                                              keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "旧名", root(s))["departmentId"]
        s.settle()
        dept_id = wecom_id(s, dept)
        lose_webhooks(s)
        a.update_department(ORG, dept, name="新名")
        event = sync_now(s, f"departments/{dept_id}")
        with s.wecom.state.lock:
            names = {d.id: d.name for d in s.wecom.state.departments.walk()}
        assert names[dept_id] == "新名", outcome(event)


def test_both_runs_upstream_then_downstream(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="both") as s:
        lose_webhooks(s)
        a = s.authing.admin
        user = a.create_user(username="onlyauthing", name="只在认证", email="oa@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        event = sync_now(s, "users/onlyauthing")
        text = outcome(event)
        assert text.index("upstream:") < text.index("downstream:"), text
        assert wecom_user(s, "onlyauthing") is not None, text
        member = s.user("onlyauthing")
        assert member is not None and member["userId"] == user["userId"]  # not a second one


def test_upstream_still_syncs_from_wecom(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="upstream") as s:
        s.wecom.admin.create_user("fromwecom", "来自企微", department=(1,),
                                  email="fw@example.com")
        s.settle()
        event = sync_now(s, "users/fromwecom")
        assert outcome(event).startswith("upstream:"), outcome(event)
        assert s.user("fromwecom") is not None
