"""Deletes in a full downstream reconcile (issue 10 §4, §5), end to end: departments that
left Authing are removed from WeCom children first once empty, only those downstream
created (the link table), counted by the deletion threshold together with users."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack, running_stack
from .test_downstream_e2e import root, wecom_departments, wecom_user
from .test_downstream_reconcile_e2e import down
from .test_reconcile_e2e import finished


def lose_webhooks(s: Stack) -> None:
    for hook in s.authing.webhooks.hooks.values():
        hook.enabled = False


def items(s: Stack, run: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    body = httpx.get(f"{s.url}/ops/runs/{run['id']}", headers=OPS).json()
    return [(i["kind"], i["key"], i["action"], i["status"]) for i in body["items"]]


def tree(s: Stack, *, reconcile_first: bool) -> tuple[str, str, str]:
    """A parent and a child department with one member in Authing, pushed to WeCom by
    webhooks or by a reconcile; then every webhook is lost. Answers the Authing ids."""
    a = s.authing.admin
    if reconcile_first:
        lose_webhooks(s)
    parent = a.create_department(ORG, "父部门", root(s))["departmentId"]
    child = a.create_department(ORG, "子部门", parent)["departmentId"]
    user = a.create_user(username="m1", name="成员", email="m1@example.com")
    a.set_user_departments(user["userId"], [{"departmentId": child}])
    if reconcile_first:
        assert down(s)["status"] == "succeeded"
    else:
        s.settle()
    made = [d for d in wecom_departments(s).values() if d.name in ("父部门", "子部门")]
    assert len(made) == 2 and wecom_user(s, "m1") is not None
    lose_webhooks(s)
    return parent, child, user["userId"]


@pytest.mark.parametrize("first", ["webhooks", "reconcile"])
def test_a_full_run_removes_departments_that_left_authing_children_first(
        sqlite_url: str, keys: CallbackKeys, first: str) -> None:
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        parent, child, user_id = tree(s, reconcile_first=first == "reconcile")
        a = s.authing.admin
        a.delete_user(user_id)
        a.delete_department(ORG, child)
        a.delete_department(ORG, parent)
        run = down(s, mode="full")
        assert run["status"] == "succeeded", (run, items(s, run))
        assert wecom_user(s, "m1") is None
        assert wecom_departments(s) == {}, items(s, run)


def test_the_threshold_counts_departments_with_users(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=2) as s:
        parent, child, user_id = tree(s, reconcile_first=False)
        a = s.authing.admin
        a.delete_user(user_id)
        a.delete_department(ORG, child)
        a.delete_department(ORG, parent)
        run = down(s, mode="full")
        assert run["status"] == "blocked", run
        assert "3 deletes exceed the limit of 2" in (run.get("error") or ""), run
        assert len(wecom_departments(s)) == 2 and wecom_user(s, "m1") is not None
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        assert finished(s, run["id"])["status"] == "succeeded"
        assert wecom_departments(s) == {} and wecom_user(s, "m1") is None


def test_a_department_downstream_did_not_create_is_left(sqlite_url: str,
                                                        keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        s.wecom.admin.create_department("企微自建", 1, id=50)  # not in Authing, not ours
        parent, child, user_id = tree(s, reconcile_first=True)
        a = s.authing.admin
        a.delete_user(user_id)
        a.delete_department(ORG, child)
        a.delete_department(ORG, parent)
        run = down(s, mode="full")
        assert run["status"] == "succeeded", run
        assert set(wecom_departments(s)) == {50}, items(s, run)


def test_a_department_still_holding_a_member_is_kept_and_says_why(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100,
                       ) as s:
        parent, child, user_id = tree(s, reconcile_first=True)
        child_id = next(d.id for d in wecom_departments(s).values() if d.name == "子部门")
        s.wecom.admin.create_user("wonly", "企微成员", department=(child_id,),
                                  email="wonly@example.com")  # not ours: never removed
        a = s.authing.admin
        a.delete_user(user_id)
        a.delete_department(ORG, child)
        a.delete_department(ORG, parent)
        run = down(s, mode="full")
        assert wecom_user(s, "wonly") is not None and wecom_user(s, "m1") is None
        assert {d.name for d in wecom_departments(s).values()} == {"父部门", "子部门"}
        failed = [i for i in items(s, run) if i[0] == "department" and i[3] == "failed"]
        assert failed, (run, items(s, run))
        assert run["status"] in ("partial", "failed"), run


def _member(s: Stack, username: str, dept: str, name: str | None = None) -> str:
    user = s.authing.admin.create_user(username=username, name=name or username,
                                       email=f"{username}@example.com")
    s.authing.admin.set_user_departments(user["userId"], [{"departmentId": dept}])
    return str(user["userId"])


def test_a_user_recreated_under_the_same_username_takes_the_member_over(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """The userid comes from the username rule (no externalId): the deleted user's member
    is not held by it any more, so the new user with that username re-enables it."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        dept = s.authing.admin.create_department(ORG, "研发部", root(s))["departmentId"]
        first = _member(s, "wangwu", dept)
        s.settle()
        s.authing.admin.delete_user(first)
        s.settle()
        assert (wecom_user(s, "wangwu") or {}).get("status") == 2  # resign: disabled
        _member(s, "wangwu", dept, name="王五新")
        s.settle()
        member = wecom_user(s, "wangwu")
        assert member is not None and member["name"] == "王五新" and member["status"] != 2
        assert not s.events(status="dead")


def test_approval_keeps_a_member_recreated_by_username_and_drops_a_moved_out_one(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Approval re-checks by the WeCom userid: a new Authing user with the username of
    a deleted one wants the member again; a user re-created only in another organization
    does not (it has no department in the synced one)."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=1) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        other = a.create_organization("other", "其他组织")
        users = [_member(s, name, dept) for name in ("kept", "moved")]
        s.settle()
        lose_webhooks(s)
        for user_id in users:
            a.delete_user(user_id)
        run = down(s, mode="full")
        assert run["status"] == "blocked", run
        _member(s, "kept", dept)
        _member(s, "moved", other["departmentId"])
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        done = finished(s, run["id"])
        assert wecom_user(s, "kept") is not None, done
        assert wecom_user(s, "moved") is None, done
