"""Red team: deletes downstream (issue 10 §4 "departments are removed children first once
empty", §5 a downstream reconcile "with the same modes"; README "Deletes touch only what
the link table says downstream wrote"). Departments downstream created in WeCom are never
recorded as ours, so a ``full`` run never removes them once they left Authing (their
webhooks lost), and the threshold counts only users."""

from __future__ import annotations

import httpx
import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, ORG, running_stack
from ..test_downstream_e2e import root, wecom_departments, wecom_user
from ..test_downstream_reconcile_e2e import down


@pytest.mark.parametrize("first", ["webhooks", "reconcile"])
def test_a_full_run_removes_departments_that_left_authing_children_first(
        sqlite_url: str, keys: CallbackKeys, first: str) -> None:
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        a = s.authing.admin
        if first == "reconcile":
            for hook in s.authing.webhooks.hooks.values():
                hook.enabled = False
        parent = a.create_department(ORG, "父部门", root(s))["departmentId"]
        child = a.create_department(ORG, "子部门", parent)["departmentId"]
        user = a.create_user(username="m1", name="成员", email="m1@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": child}])
        if first == "reconcile":
            assert down(s)["status"] == "succeeded"
        else:
            s.settle()
        assert len(wecom_departments(s)) == 2 and wecom_user(s, "m1") is not None
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False  # the deletes' webhooks are lost
        a.delete_user(user["userId"])
        a.delete_department(ORG, child)
        a.delete_department(ORG, parent)
        run = down(s, mode="full")
        items = httpx.get(f"{s.url}/ops/runs/{run['id']}", headers=OPS).json()["items"]
        assert run["status"] == "succeeded", run
        assert wecom_user(s, "m1") is None
        assert wecom_departments(s) == {}, [(i["kind"], i["key"], i["action"]) for i in items]
