"""Red team: ``POST /ops/sync/users/{userid}`` (the console's "Sync now") with
``WECOM_SYNC_DIRECTION=downstream`` runs the *upstream* direction: it writes WeCom's member
into Authing (README: with ``downstream`` only, WeCom's changes "are recorded as settled
and not applied to Authing") and never pushes the Authing user to WeCom, yet the event
reads ``done`` / "unchanged" (issue 13 §1 "sync it now, which shows the result")."""

from __future__ import annotations

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, running_stack
from ..test_downstream_e2e import authing_writes, root, wecom_user


def test_sync_now_in_downstream_does_not_write_wecom_into_authing(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        s.wecom.admin.create_user("wonly", "只在企微", department=(1,),
                                  email="wonly@example.com")
        s.settle()
        before = authing_writes(s)
        reply = httpx.post(f"{s.url}/ops/sync/users/wonly", headers=OPS)
        assert reply.status_code == 202, reply.text
        s.settle()
        assert s.user("wonly") is None, "created in Authing by a downstream-only service"
        assert authing_writes(s) == before


def test_sync_now_in_downstream_pushes_the_authing_user_to_wecom(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False  # its webhooks were lost: the operator syncs it by hand
        a = s.authing.admin
        user = a.create_user(username="syncme", name="同步我", email="syncme@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        reply = httpx.post(f"{s.url}/ops/sync/users/syncme", headers=OPS)
        assert reply.status_code == 202, reply.text
        s.settle()
        assert wecom_user(s, "syncme") is not None, s.events()
