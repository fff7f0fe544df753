"""Red team: the downstream deletion guard, approval and dry run (issue 10 §4, §5: "the
same deletion threshold applies as upstream"; README "Reconciler": approval "re-checks
that each object is still absent" from the source; "a dry run has the same shape with
nothing applied"). Expected to fail until fixed."""

from __future__ import annotations

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, ORG, running_stack
from ..test_downstream_e2e import root, wecom_user
from ..test_downstream_reconcile_e2e import down
from ..test_reconcile_e2e import finished
from .test_downstream_orders import hooks, member_of


def test_approval_keeps_a_member_whose_authing_user_came_back(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """README "Reconciler": approving a blocked run re-checks that each object is still
    absent from the source before deleting it. Downstream the source is Authing: two
    users leave (webhooks lost), the full run is blocked; before approval an admin
    re-creates one of them with the same externalId. The approved run must delete only
    the other: the member whose Authing user exists again stays in WeCom."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=1) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        first = member_of(s, "back", "回来者", dept, externalId="back")
        second = member_of(s, "gone", "离开者", dept, externalId="gone")
        s.settle()
        assert wecom_user(s, "back") is not None and wecom_user(s, "gone") is not None
        hooks(s, False)
        a.delete_user(first)
        a.delete_user(second)
        run = down(s, mode="full")
        assert run["status"] == "blocked", run
        member_of(s, "back2", "回来者", dept, externalId="back")
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        done = finished(s, run["id"])
        assert wecom_user(s, "gone") is None, done
        assert wecom_user(s, "back") is not None, done


def test_approval_deletes_the_members_of_resigned_users(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """README downstream deletes: "an Authing user resigned (resign-user: memberships
    removed, account disabled) has left too and follows the same policy"; README
    "Reconciler": a blocked run deletes once approved. Two users resign in Authing
    (webhooks lost); the full run under ``delete`` is blocked by the threshold; once
    approved both WeCom members are gone. A resigned account still exists in Authing, but
    it has not come back, so the approval's absence re-check must not keep its member."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=1) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        users = [member_of(s, f"quit{i}", f"离职{i}", dept) for i in range(2)]
        s.settle()
        assert all(wecom_user(s, f"quit{i}") is not None for i in range(2))
        hooks(s, False)
        for user_id in users:
            a.resign_user(user_id)
        run = down(s, mode="full")
        assert run["status"] == "blocked", run
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        done = finished(s, run["id"])
        left = [u for u in ("quit0", "quit1") if wecom_user(s, u) is not None]
        assert left == [], (done, left)
