"""Red team: downstream (Authing → WeCom) under odd orders, lost and repeated webhooks,
end to end over real HTTP with both simulators (issue 10 §2, §3, §6; mission: "nothing is
lost, no former employee stays active"). Expected to fail until fixed."""

from __future__ import annotations

from typing import Any

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import HOOK_SECRET, ORG, Stack, running_stack
from ..test_downstream_e2e import root, wecom_departments, wecom_user
from ..test_downstream_reconcile_e2e import down


def hooks(s: Stack, enabled: bool) -> None:
    for hook in s.authing.webhooks.hooks.values():
        hook.enabled = enabled


def post_webhook(s: Stack, event: str, data: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{s.url}/authing/webhook", json={"eventName": event, "data": data},
                      headers={"x-authing-webhook-secret": HOOK_SECRET})


def member_of(s: Stack, username: str, name: str, dept: str, **extra: Any) -> str:
    a = s.authing.admin
    user = a.create_user(username=username, name=name, email=f"{username}@example.com",
                         **extra)
    a.set_user_departments(user["userId"], [{"departmentId": dept}])
    return str(user["userId"])


def test_a_user_deleted_then_recreated_with_the_same_userid_keeps_an_active_member(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §3 (the WeCom userid is the Authing externalId) and §4 (deletes follow the
    policy): Authing user A (userid ``lisi``) leaves and a new Authing user B is created
    with the same externalId, both webhooks delivered in order. WeCom must end with one
    active member ``lisi`` carrying B's name: B is the one Authing holds now. Under the
    default ``resign`` policy A's delete disables ``lisi``; B's create must take it over
    (or re-enable it), not stay refused as "another Authing user holds this userid"."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        first = member_of(s, "lisi", "李四", dept, externalId="lisi")
        s.settle()
        assert wecom_user(s, "lisi")["name"] == "李四"  # type: ignore[index]
        a.delete_user(first)
        member_of(s, "lisi2", "李四新", dept, externalId="lisi")
        s.settle()
        member = wecom_user(s, "lisi")
        dead = [(e["event_type"], e["last_error"]) for e in s.events(status="dead")]
        assert member is not None and member["name"] == "李四新" \
            and member["status"] != 2, (member, dead)


def test_a_lost_user_deleted_webhook_does_not_block_the_new_holder_of_the_userid(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §5 (the downstream reconcile is the safety net) and the mission ("nothing
    is lost"): A (userid ``wangwu``) is deleted in Authing and its webhook is lost; a new
    user B takes externalId ``wangwu``. A full downstream reconcile must leave WeCom with
    ``wangwu`` holding B's name and report no failed item: A no longer exists in Authing,
    so the link table's record of A cannot make B a conflict."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        first = member_of(s, "wangwu", "王五", dept, externalId="wangwu")
        s.settle()
        assert wecom_user(s, "wangwu") is not None
        hooks(s, False)
        a.delete_user(first)
        member_of(s, "wangwu2", "王五新", dept, externalId="wangwu")
        run = down(s, mode="full")
        detail = httpx.get(f"{s.url}/ops/runs/{run['id']}",
                           headers={"Authorization": "Bearer ops-test-token"}).json()
        member = wecom_user(s, "wangwu")
        assert run["status"] == "succeeded" and member is not None \
            and member["name"] == "王五新", (run, detail.get("items"), member)


def test_a_stale_user_deleted_webhook_for_a_living_user_removes_nothing(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §2 ("the webhook is a hint; re-read the entity from Authing"): a
    ``user:deleted`` delivery for a user Authing still holds (a redelivery, a delayed or
    forged one) must not disable or delete the WeCom member."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        user_id = member_of(s, "zhaoliu", "赵六", dept)
        s.settle()
        assert wecom_user(s, "zhaoliu") is not None
        answer = post_webhook(s, "user:deleted", {"id": user_id, "username": "zhaoliu"})
        assert answer.status_code == 200
        s.settle()
        member = wecom_user(s, "zhaoliu")
        assert member is not None and member["status"] != 2, member


def test_a_department_moved_under_one_whose_webhook_was_lost_is_created_with_it(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §2 (node-moved; the webhook is a hint) and the mission ("right under any
    order, delay or loss"): the node-added of the new parent Q is lost; the node-moved of
    C under Q arrives. WeCom must end with Q and C under it (Q created first, as upstream
    does with missing ancestors), not with C left where it was."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        c = a.create_department(ORG, "子部门", root(s))["departmentId"]
        s.settle()
        hooks(s, False)
        q = a.create_department(ORG, "新上级", root(s))["departmentId"]
        a.update_department(ORG, c, parentDepartmentId=q)
        hooks(s, True)
        assert post_webhook(s, "organization:node-moved",
                            {"node": {"id": c}}).status_code == 200
        s.settle()
        made = {d.name: d for d in wecom_departments(s).values()}
        dead = s.events(status="dead")
        assert "新上级" in made and made["子部门"].parentid == made["新上级"].id, (made, dead)


def test_member_removed_for_an_already_deleted_user_settles_quietly(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §2 (member-removed) with the mission's "any order": the user was deleted
    (and its member removed), then a late ``organization:member-removed`` about it comes.
    It must settle (done), not go dead or fail, and WeCom stays without the member."""
    with running_stack(sqlite_url, keys, direction="downstream", user_delete_policy="delete",
                       delete_threshold_percent=100, delete_threshold_count=100) as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        user_id = member_of(s, "sunqi", "孙七", dept)
        s.settle()
        a.delete_user(user_id)
        s.settle()
        assert wecom_user(s, "sunqi") is None
        assert post_webhook(s, "organization:member-removed",
                            {"user": {"id": user_id}, "node": {"id": dept}}
                            ).status_code == 200
        s.settle()
        bad = s.events(status="dead") + s.events(status="failed")
        assert bad == [] and wecom_user(s, "sunqi") is None, bad


def test_a_user_outside_the_synced_organization_is_not_created_in_wecom(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §4 ("a member needs a name and at least one department in the synced
    organization"): a user who belongs only to another Authing organization gets no WeCom
    member, whatever webhooks arrive about it."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        other = a.create_organization("other", "其他组织")
        member_of(s, "outsider", "外人", other["departmentId"])
        s.settle()
        assert wecom_user(s, "outsider") is None


def test_a_user_moved_out_of_the_synced_organization_does_not_stay_active(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Mission "no former employee stays active" with issue 10 §4 (a member needs a
    department in the synced organization; deletes follow the policy, default
    ``resign`` → disabled): a user whose last department in the synced organization is
    removed (``member-removed``; it now belongs only to another organization) has left
    what WeCom mirrors. Its WeCom member must not stay active in its old department."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        other = a.create_organization("other", "其他组织")
        user_id = member_of(s, "mover", "调走者", dept)
        s.settle()
        assert wecom_user(s, "mover") is not None
        a.set_user_departments(user_id, [{"departmentId": other["departmentId"]}])
        s.settle()
        member = wecom_user(s, "mover")
        reasons = "; ".join(f'{e["event_type"]} {e["status"]} {e["last_error"] or ""}'
                            for e in s.events(entity_key=user_id))
        assert member is None or member["status"] == 2, (member, reasons)
