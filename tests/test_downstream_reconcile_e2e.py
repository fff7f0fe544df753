"""The downstream reconcile (Authing → WeCom) over the ops API, end to end: the same
engine, run log, modes, dry run, threshold and approval as upstream."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack, running_stack
from .test_downstream_e2e import root, wecom_user, writes
from .test_reconcile_e2e import finished, start


def seed_authing(s: Stack, users: int, departments: int = 5) -> list[str]:
    """``departments`` under the organization root, ``users`` spread over them (silent:
    no webhooks). Answers the users' ids."""
    top = root(s)
    depts = s.authing.admin.seed_departments([
        {"organizationCode": ORG, "name": f"部门{i}", "parentDepartmentId": top}
        for i in range(departments)])
    return s.authing.admin.seed_users([
        {"username": f"user{i:04d}", "name": f"用户{i}", "email": f"user{i}@example.com",
         "phone": f"139{i:08d}", "departmentIds": [depts[i % departments]]}
        for i in range(users)])


def down(s: Stack, **body: Any) -> dict[str, Any]:
    return finished(s, start(s, {"direction": "downstream", **body}), timeout=300)


def test_a_thousand_users_converge_then_a_no_op_run_writes_nothing(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        seed_authing(s, 1000)
        dry = down(s, dry_run=True)
        assert dry["status"] == "succeeded" and writes(s) == 0
        run = down(s)
        assert run["status"] == "succeeded", run
        assert run["direction"] == "downstream"
        assert len(s.wecom.state.users) == 1000
        assert wecom_user(s, "user0007")["name"] == "用户7"  # type: ignore[index]
        assert any("WeCom (the actual side)" in n for n in run.get("notes") or []), run
        s.settle(timeout=240)  # the write-backs' webhooks: nothing left to do
        before = writes(s)
        # WeCom now withholds mobile and email on read (new apps, 代开发): unknown, not
        # different.
        s.wecom.switches.withhold_sensitive = True
        again = down(s)
        assert again["status"] == "succeeded" and writes(s) == before, s.wecom.faults.stats


def test_the_reconcile_works_when_wecom_refuses_reads(sqlite_url: str,
                                                      keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        seed_authing(s, 30, 3)
        assert down(s)["status"] == "succeeded"
        s.settle()
        before = writes(s)
        s.wecom.switches.restricted_reads = True  # 48009 on user/get, user/list, ...
        run = down(s)
        assert run["status"] == "succeeded", run
        assert writes(s) == before
        notes = " ".join(run.get("notes") or [])
        assert "list_id" in notes or "simplelist" in notes, notes


def test_deletes_pass_the_threshold_only_with_approval(sqlite_url: str,
                                                       keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream",
                       delete_threshold_count=3, user_delete_policy="delete") as s:
        ids = seed_authing(s, 10, 2)
        assert down(s)["status"] == "succeeded"
        s.settle()
        with s.authing.state.lock:
            for user_id in ids[:5]:
                s.authing.state.users.pop(user_id)  # gone without webhooks
        run = down(s, mode="full")
        assert run["status"] == "blocked", run
        assert len(s.wecom.state.users) == 10
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        assert finished(s, run["id"])["status"] == "succeeded"
        assert len(s.wecom.state.users) == 5


def test_a_member_whose_user_left_the_organization_is_removed_by_a_full_run(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """A user downstream created moves (webhooks lost) to another organization of the
    pool only: it left the scope. A full run applies the delete policy (resign: the
    member is disabled), counted by the deletion threshold (approval re-checks it: the
    user has no department in the organization); the next run writes nothing. Another
    user still in the synced organization and in the other one is left as it is."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        other = a.create_organization("other", "其他组织")
        users = {}
        for name in ("leaves", "stays"):
            user = a.create_user(username=name, name=name, email=f"{name}@example.com")
            a.set_user_departments(user["userId"], [{"departmentId": dept}])
            users[name] = user["userId"]
        s.settle()
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False
        a.set_user_departments(users["leaves"], [{"departmentId": other["departmentId"]}])
        a.set_user_departments(users["stays"], [{"departmentId": dept},
                                                {"departmentId": other["departmentId"]}])
        run = down(s, mode="full")
        assert run["status"] == "blocked", run  # the threshold counts it
        reply = httpx.post(f"{s.url}/ops/runs/{run['id']}/approve", headers=OPS)
        assert reply.status_code == 202, reply.text
        assert finished(s, run["id"])["status"] == "succeeded"
        assert (wecom_user(s, "leaves") or {}).get("status") == 2
        assert (wecom_user(s, "stays") or {}).get("status") != 2
        before = writes(s)
        assert down(s, mode="full")["status"] == "succeeded"
        assert writes(s) == before
