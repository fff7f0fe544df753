"""A write's echo that arrives, and is applied, while the entity that wrote it is still
running (before its settlement records the link row): nothing may be written back.
Downstream records what a write will leave before making it (``engine.echo``), so
upstream's echo check knows WeCom's callback. The ordering is driven, not left to luck: a
write does not return until the opposite direction has attempted the event about it (or
ten seconds have passed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from sync_core.authing.client import AuthingClient
from sync_core.authing.source import AuthingSource
from sync_core.wecom.client import WeComClient
from sync_core.wecom.target import LinkIds

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


class UpstreamWatch:
    """What a driven ordering needs of the service: armed on a stack after its setup, it
    waits for conditions and tells when upstream has settled what followed."""

    def __init__(self) -> None:
        self.url = ""
        self.seen_after = 0
        self.armed = False

    def arm(self, s: Stack) -> None:
        self.url = s.url
        self.seen_after = max((e["id"] for e in s.events()), default=0)
        self.armed = True

    async def _until(self, done: Any) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not await done():
            await asyncio.sleep(0.02)

    async def _upstream_settled(self) -> bool:
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{self.url}/ops/events", headers=OPS,
                                     params={"limit": "1000", "source": "wecom"})
        events = [e for e in reply.json()["events"] if e["id"] > self.seen_after]
        return bool(events) and all(e["status"] == "done" for e in events)


class ReadMidWrite(UpstreamWatch):
    """The other way round, the reads driven into upstream's write: upstream's write of a
    WeCom change to Authing is held after its first request (the profile; the memberships
    follow) until downstream has read the Authing user, half written; downstream's look at
    WeCom is held until upstream has settled. Downstream then plans on a read older than
    upstream's settlement, with the echo digest its claim read before it."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote_first = False  # upstream made its first Authing request
        self.read = False  # downstream read the Authing user after that request
        self.held_reads = 0

    async def after_upstream_write(self) -> None:
        if self.armed and not self.wrote_first:
            self.wrote_first = True

            async def read() -> bool:
                return self.read
            await self._until(read)

    async def after_downstream_read(self) -> None:
        if self.armed and self.wrote_first and not self.read:
            self.read = True
            self.held_reads += 1

    async def before_downstream_look(self) -> None:
        if self.armed and self.wrote_first:
            await self._until(self._upstream_settled)
            self.armed = False


def wrap(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, *,
         before: Callable[[], Awaitable[None]] | None = None,
         after: Callable[[], Awaitable[None]] | None = None) -> None:
    """``cls.name`` (a coroutine method) runs ``before`` first and ``after`` last."""
    original = getattr(cls, name)

    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if before is not None:
            await before()
        result = await original(self, *args, **kwargs)
        if after is not None:
            await after()
        return result

    monkeypatch.setattr(cls, name, wrapped)


@pytest.fixture
def read_mid_write(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadMidWrite]:
    hold = ReadMidWrite()
    wrap(monkeypatch, AuthingClient, "send_planned", after=hold.after_upstream_write)
    wrap(monkeypatch, AuthingSource, "read_user", after=hold.after_downstream_read)
    wrap(monkeypatch, LinkIds, "member", before=hold.before_downstream_look)
    yield hold


def wecom_member(s: Stack) -> int:
    """Member zhangsan in WeCom department 2 (of 2 and 3), synced to Authing: the WeCom
    writes counted so far (downstream's must stay at that)."""
    admin = s.wecom.admin
    admin.create_department("研发部", 1, id=2)
    admin.create_department("后端组", 2, id=3)
    admin.create_user("zhangsan", "张三", department=(2,), mobile="13800000000")
    s.settle()
    assert s.user("zhangsan") is not None
    return s.wecom.faults.stats.total_writes


def in_authing_alone(s: Stack, wecom_writes: int) -> None:
    """zhangsan's change (张三丰, departments 2 and 3) reached Authing, and nothing was
    written to WeCom since ``wecom_writes``."""
    assert s.user("zhangsan")["name"] == "张三丰"  # type: ignore[index]
    assert s.user_open_departments("zhangsan") == {"2", "3"}
    assert s.wecom.faults.stats.total_writes == wecom_writes, s.wecom.faults.stats
    no_dead(s)


def test_a_wecom_change_read_half_written_by_downstream_writes_nothing_to_wecom(
        sqlite_url: str, keys: CallbackKeys, read_mid_write: ReadMidWrite) -> None:
    """A WeCom change upstream writes to Authing in two requests: downstream, reading the
    Authing user between them and planning after upstream settled, must not push the half
    (the old memberships) to WeCom, nor the whole back again after."""
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_writes = wecom_member(s)
        read_mid_write.arm(s)
        s.wecom.admin.update_user("zhangsan", name="张三丰", department=[2, 3])
        s.settle()
        assert read_mid_write.held_reads == 1, "downstream read between upstream's requests"
        in_authing_alone(s, wecom_writes)


@pytest.mark.parametrize("policy", ["resign", "delete"])
def test_a_wecom_member_created_and_read_half_written_by_downstream_writes_nothing(
        sqlite_url: str, keys: CallbackKeys, read_mid_write: ReadMidWrite,
        policy: str) -> None:
    """The same for a member created in WeCom: upstream creates the Authing user, then
    writes what follows; downstream reads between the requests. Read before its
    memberships, the new user has no department: a member that left, whom the ``delete``
    policy deletes from WeCom unless the delete is held to the claim as well."""
    with downstream(sqlite_url, keys, direction="both", user_delete_policy=policy) as s:
        admin = s.wecom.admin
        admin.create_department("研发部", 1, id=2)
        admin.create_department("后端组", 2, id=3)
        s.settle()
        wecom_writes = s.wecom.faults.stats.total_writes
        read_mid_write.arm(s)
        admin.create_user("lisi", "李四", department=(2, 3), mobile="13900000000")
        s.settle()
        assert read_mid_write.held_reads == 1, "downstream read between upstream's requests"
        assert s.user("lisi") is not None
        assert wecom_user(s, "lisi") is not None, "the new member was deleted from WeCom"
        assert s.user_open_departments("lisi") == {"2", "3"}
        assert s.wecom.faults.stats.total_writes == wecom_writes, s.wecom.faults.stats
        no_dead(s)


def test_a_wecom_department_renamed_and_read_mid_write_by_downstream_writes_nothing(
        sqlite_url: str, keys: CallbackKeys, read_mid_write: ReadMidWrite,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a department: downstream reads the renamed Authing department while
    upstream's write is held, and looks at WeCom after upstream settled."""
    wrap(monkeypatch, AuthingSource, "read_department",
         after=read_mid_write.after_downstream_read)
    wrap(monkeypatch, LinkIds, "wecom_id", before=read_mid_write.before_downstream_look)
    with downstream(sqlite_url, keys, direction="both") as s:
        admin = s.wecom.admin
        admin.create_department("研发部", 1, id=2)
        s.settle()
        wecom_writes = s.wecom.faults.stats.total_writes
        read_mid_write.arm(s)
        admin.update_department(2, name="研发中心")
        s.settle()
        assert read_mid_write.held_reads == 1
        assert s.wecom.faults.stats.total_writes == wecom_writes, s.wecom.faults.stats
        no_dead(s)


def test_a_wecom_change_whose_webhook_comes_before_upstream_settles_writes_nothing_to_wecom(
        sqlite_url: str, keys: CallbackKeys, callback_first: CallbackFirst) -> None:
    """Upstream's first Authing request returns only once downstream has attempted its
    webhook: the rest of the ordering is the machine's (reads mid-write or after)."""
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_writes = wecom_member(s)
        arm(s, callback_first, source="authing")
        s.wecom.admin.update_user("zhangsan", name="张三丰", department=[2, 3])
        s.settle()
        assert callback_first.held == 1, "the webhook was attempted before the settlement"
        in_authing_alone(s, wecom_writes)
