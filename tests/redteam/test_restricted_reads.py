"""Red team: downstream events while WeCom refuses reads (issue 10 §5: "When WeCom refuses
reads (48009, 60020 ...) it still works"; README: "An event whose member WeCom refuses to
read (48009, 60020) is planned the same way against that record instead of being
retried"). Expected to fail until fixed."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import eventually, running_stack
from ..test_downstream_e2e import synced_member, wecom_user


def test_an_authing_rename_of_a_member_upstream_synced_reaches_wecom_with_reads_refused(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """``both``: a member made in WeCom is synced upstream (the link table records it).
    Then WeCom starts refusing detail reads (a new server IP: 48009) and an Authing admin
    renames the user. The rename must reach WeCom (a write is still allowed), as it does
    for a member downstream wrote. Today the event fails with RestrictedError and is
    retried with backoff: the member was written by the other direction, so downstream
    has no digest of its own and refuses to plan."""
    with running_stack(sqlite_url, keys, direction="both") as s:
        uid = synced_member(s, "pre", "原名", "13800000091")
        s.wecom.configure(restricted_reads=True)
        s.authing.admin.update_user(uid, name="新名")
        s.authing.webhooks.drain(30)
        eventually(lambda: (wecom_user(s, "pre") or {}).get("name") == "新名", 20,
                   lambda: str([(e["status"], e["last_error"])
                                for e in s.events(entity_key=uid)][:3]))
