"""A write's echo that arrives, and is applied, while the entity that wrote it is still
running (before its settlement records the link row): nothing may be written back.
Downstream records what a write will leave before making it (``engine.echo``), so
upstream's echo check knows WeCom's callback. The ordering is driven, not left to luck: a
write does not return until the opposite direction has attempted the event about it (or
ten seconds have passed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync_core.authing.client import AuthingClient
from sync_core.wecom.client import WeComClient

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack
from .test_downstream_e2e import (
    authing_writes,
    downstream,
    root,
    wecom_departments,
    wecom_user,
    with_member,
)


class CallbackFirst:
    """Makes a write return only once the event it causes on the other side (from
    ``source``) has been attempted (``armed``), so that event is applied before the
    write's own entity finishes and settles."""

    def __init__(self) -> None:
        self.armed = False
        self.url = ""
        self.held = 0
        self.seen_after: int = 0
        self.source = "wecom"

    async def wait_for_callback(self) -> None:
        if not self.armed:
            return
        self.armed = False
        deadline = time.monotonic() + 10.0
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                reply = await client.get(f"{self.url}/ops/events", headers=OPS,
                                         params={"limit": "1000"})
                events = [e for e in reply.json()["events"] if e["source"] == self.source
                          and e["id"] > self.seen_after and e["attempts"] >= 1]
                if events:
                    self.held += 1
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
def callback_first(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallbackFirst]:
    hold = CallbackFirst()
    patched = [(WeComClient, name) for name in ("user_update", "user_create",
                                                "department_update")]
    for cls, name in [*patched, (AuthingClient, "send_planned")]:
        original = getattr(cls, name)

        def wrapped(self: Any, *args: Any, _original: Any = original,
                    **kwargs: Any) -> Any:
            async def run() -> Any:
                result = await _original(self, *args, **kwargs)
                await hold.wait_for_callback()
                return result
            return run()

        monkeypatch.setattr(cls, name, wrapped)
    yield hold


def arm(s: Stack, hold: CallbackFirst, source: str = "wecom") -> None:
    hold.url = s.url
    hold.seen_after = max((e["id"] for e in s.events()), default=0)
    hold.source = source
    hold.armed = True


def no_dead(s: Stack) -> None:
    assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def test_an_authing_rename_called_back_before_its_settlement_writes_nothing_to_authing(
        sqlite_url: str, keys: CallbackKeys, callback_first: CallbackFirst) -> None:
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True  # another app sees our writes
        a = s.authing.admin
        _, user_id = with_member(s)
        before = authing_writes(s)
        arm(s, callback_first)
        a.update_user(user_id, name="王五二")
        s.settle()
        assert callback_first.held == 1, "the callback was applied before the settlement"
        assert wecom_user(s, "wangwu")["name"] == "王五二"  # type: ignore[index]
        assert authing_writes(s) == before, s.authing.stats
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def test_an_authing_membership_change_called_back_before_its_settlement_writes_nothing(
        sqlite_url: str, keys: CallbackKeys, callback_first: CallbackFirst) -> None:
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        rd, uid = with_member(s)
        a = s.authing.admin
        other = a.create_department(ORG, "市场部", root(s))["departmentId"]
        s.settle()
        before = authing_writes(s)
        arm(s, callback_first)
        a.set_user_departments(uid, [{"departmentId": rd}, {"departmentId": other}])
        s.settle()
        assert callback_first.held == 1
        assert len(wecom_user(s, "wangwu")["department"]) == 2  # type: ignore[index]
        assert authing_writes(s) == before, s.authing.stats
        no_dead(s)


def test_an_authing_department_rename_called_back_before_its_settlement_writes_nothing(
        sqlite_url: str, keys: CallbackKeys, callback_first: CallbackFirst) -> None:
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        rd, _ = with_member(s)
        before = authing_writes(s)
        arm(s, callback_first)
        s.authing.admin.update_department(ORG, rd, name="销售中心")
        s.settle()
        assert callback_first.held == 1
        assert [d.name for d in wecom_departments(s).values()] == ["销售中心"]
        assert authing_writes(s) == before, s.authing.stats
        no_dead(s)


def test_an_authing_user_created_in_wecom_and_called_back_before_its_settlement(
        sqlite_url: str, keys: CallbackKeys, callback_first: CallbackFirst) -> None:
    """The callback of the create comes before the write-back of the userid, even: the
    member is downstream's, and Authing gets nothing but that write-back."""
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        a = s.authing.admin
        rd = a.create_department(ORG, "销售部", root(s))["departmentId"]
        s.settle()
        before = dict(s.authing.stats.writes)
        arm(s, callback_first)
        user = a.create_user(username="wangwu", name="王五", email="wangwu@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": rd}])
        s.settle()
        assert callback_first.held == 1
        assert wecom_user(s, "wangwu") is not None
        after = dict(s.authing.stats.writes)
        # The userid written back (externalId, wechatwork_user_id), nothing more.
        assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} \
            == {"update-user": 1}, after
        with s.authing.state.lock:
            assert len(s.authing.state.users) == 1
        no_dead(s)

