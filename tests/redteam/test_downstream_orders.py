"""Red team: downstream (Authing → WeCom) under odd orders, lost and repeated webhooks,
end to end over real HTTP with both simulators (issue 10 §2, §3, §6; mission: "nothing is
lost, no former employee stays active"). Expected to fail until fixed."""

from __future__ import annotations

from typing import Any

from ..conftest import CallbackKeys
from ..e2e_stack import ORG, Stack, running_stack
from ..test_downstream_e2e import root, wecom_user


def hooks(s: Stack, enabled: bool) -> None:
    for hook in s.authing.webhooks.hooks.values():
        hook.enabled = enabled


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



def test_an_authing_externalid_change_leaves_authing_naming_a_real_member(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §3 ("the WeCom userid is the Authing externalId ... whatever is chosen is
    written back to Authing") and reference §3.6 ("a userid can hardly be renamed ... an
    Authing change must not try to rename it"): an admin changes a synced user's
    externalId from ``ext`` to ``ext2``. Whatever downstream does (refuse with a per-item
    error, or make WeCom follow), afterwards the userid Authing records as the member's
    (customData ``wechatwork_user_id``) must be one WeCom holds. Today downstream writes
    ``ext2`` back as the WeCom userid while WeCom still holds only ``ext``, with no error:
    the link is silently broken (in ``both`` the next callback about ``ext`` finds no
    Authing account for it)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        dept = a.create_department(ORG, "研发部", root(s))["departmentId"]
        user_id = member_of(s, "ext", "外部", dept, externalId="ext")
        s.settle()
        a.update_user(user_id, externalId="ext2")
        s.settle()
        held = (a.get_user(user_id) or {}).get("customData", {}).get("wechatwork_user_id")
        assert held is not None and wecom_user(s, str(held)) is not None, \
            (held, wecom_user(s, "ext") is not None, wecom_user(s, "ext2"))
