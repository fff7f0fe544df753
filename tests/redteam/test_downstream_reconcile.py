"""Red team: the downstream reconcile against a user pool that holds more than the synced
organization (issue 10 §4: "a member needs ... at least one department in the synced
organization"; §5: the reconcile is the safety net for what webhooks carry). Expected to
fail until fixed."""

from __future__ import annotations

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, ORG, running_stack
from ..test_downstream_e2e import root, wecom_user
from ..test_downstream_reconcile_e2e import down
from .test_downstream_orders import hooks


def test_a_member_also_in_another_organization_is_created_by_a_reconcile(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """A user in the synced organization's 研发部 who also belongs to a department of
    another organization of the same pool: the webhook path creates the WeCom member in
    研发部 only (its departments are read with their organization). The full downstream
    reconcile must do the same: succeed, with the member in WeCom in 研发部. Today the
    reconcile's Authing snapshot leaves the organization of the other department unknown,
    counts it as the synced organization's, and fails the user ("department ... has no
    id in the target") on every run."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        hooks(s, False)
        other = a.create_organization("other", "其他组织")
        elsewhere = a.create_department("other", "外部门", other["departmentId"])
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        user = a.create_user(username="twoorgs", name="两边", email="twoorgs@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": dept},
                                                {"departmentId": elsewhere["departmentId"]}])
        run = down(s, mode="full")
        items = httpx.get(f"{s.url}/ops/runs/{run['id']}", headers=OPS).json()["items"]
        failed = [(i["kind"], i["error"]) for i in items if i["status"] == "failed"]
        assert run["status"] == "succeeded" and failed == [], (run["status"], failed)
        assert wecom_user(s, "twoorgs") is not None
