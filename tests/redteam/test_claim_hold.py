"""Red team: the downstream write held to the claim (``engine.echo.claimed``, commit
3b6097b). Each test names the fault it shows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from sync_core.authing.client import AuthingClient
from sync_core.authing.source import AuthingSource
from sync_core.metrics import Metrics
from sync_core.runtime import build_runtime
from sync_core.store import migrate
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow
from sync_core.wecom.client import WeComClient
from sync_core.wecom.target import LinkIds, WeComTarget

from ..conftest import CallbackKeys, make_settings
from ..e2e_stack import OPS, eventually
from ..test_downstream_e2e import downstream, wecom_user
from ..test_echo_before_settlement_e2e import (
    ReadMidWrite,
    UpstreamWatch,
    in_authing_alone,
    no_dead,
    wecom_member,
    wrap,
)
from ..test_echo_before_settlement_e2e import read_mid_write as read_mid_write  # fixture
from ..test_reconcile_e2e import finished, start


def _link_reads_of_a_claim(tmp_path: Path, direction: str) -> list[str]:
    """The statements on the link table that the worker's claim of one Authing webhook
    makes, with the service wired as ``direction``."""
    settings = make_settings(
        f"sqlite:///{tmp_path / f'{direction}.db'}", direction=direction,
        wecom_corp_id="corp", wecom_contact_secret="s", wecom_api_base="http://127.0.0.1:9",
        authing_api_base="http://127.0.0.1:9", authing_access_key_id="pool",
        authing_access_key_secret="pool-secret", authing_webhook_secret="hook")
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    try:
        runtime = build_runtime(settings, engine, Metrics())
        with engine.begin() as conn:
            insert_new(conn, [NewEvent(source="authing", dedupe_key="a", entity_kind="user",
                                       entity_key="u-1", event_type="user.updated",
                                       payload={}, received_at=utcnow())])
        seen: list[str] = []

        def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if " link" in statement.lower():
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", spy)
        claims = runtime.worker._settle_and_claim([], 8)
        assert [c.entity_key for c in claims] == ["u-1"]
        return seen
    finally:
        engine.dispose()


def test_a_downstream_only_claim_makes_no_echo_read(tmp_path: Path) -> None:
    """Downstream alone records no write intents and holds no write to a claim
    (``WeComWriter.intended_target`` is None when upstream does not run), so its claims
    need no read of the link table. ``Worker._uses_echoes`` takes "both" from the
    distinct directions it maps, and the runtime always maps operator events (``ops``) to
    the upstream sync, in downstream-only mode too: every claim of webhooks paid an echo
    read for nothing."""
    assert _link_reads_of_a_claim(tmp_path, "downstream") == []
    assert _link_reads_of_a_claim(tmp_path, "both") != []  # the read where it serves


def test_a_failed_echo_read_does_not_let_a_half_written_read_through(
        sqlite_url: str, keys: CallbackKeys, read_mid_write: ReadMidWrite,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim's echo read fails once (a database blip) for the downstream claims:
    ``Worker._read_echoes`` logs it and goes on, and the webhook is then applied with no
    claim at all, so its WeCom write is held to nothing. The driven ordering of
    ``test_a_wecom_change_read_half_written_by_downstream_writes_nothing_to_wecom`` then
    writes WeCom twice (the half-written Authing user first), the fault the hold fixed.
    A failed read costs reads in a direction that trusts echoes, but it must not cost the
    hold of a direction whose writes are held to it."""
    from sync_core.directory.vocabulary import Direction
    from sync_core.engine import worker as worker_module

    read = worker_module.written_by_opposite
    failed: list[str] = []

    def flaky(conn: Any, direction: Any, entities: Any) -> Any:
        if direction is Direction.DOWNSTREAM and read_mid_write.armed and not failed:
            failed.append("once")
            raise OperationalError("SELECT links", {}, Exception("database is locked"))
        return read(conn, direction, entities)

    monkeypatch.setattr(worker_module, "written_by_opposite", flaky)
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_writes = wecom_member(s)
        read_mid_write.arm(s)
        s.wecom.admin.update_user("zhangsan", name="张三丰", department=[2, 3])
        s.settle()
        assert failed, "the downstream claim's echo read failed"
        assert read_mid_write.held_reads == 1, "downstream read between upstream's requests"
        in_authing_alone(s, wecom_writes)


class ReconcileMidWrite(UpstreamWatch):
    """Upstream's write of a WeCom change to Authing is held after its first request (the
    profile) until a downstream reconcile has read Authing; the reconcile's read of WeCom
    is held until upstream has settled."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote_first = asyncio.Event()
        self.read = False

    async def after_upstream_write(self) -> None:
        if self.armed and not self.wrote_first.is_set():
            self.wrote_first.set()

            async def read() -> bool:
                return self.read
            await self._until(read)

    async def before_reconcile_look(self) -> None:
        if self.armed and self.read:
            await self._until(self._upstream_settled)
            self.armed = False


def test_a_downstream_reconcile_does_not_push_a_half_written_authing_user_to_wecom(
        sqlite_url: str, keys: CallbackKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """In ``both``, a member changed in WeCom (name and departments) while a downstream
    reconcile runs: upstream writes the profile, the reconcile reads Authing (new name,
    old departments), upstream writes the memberships and settles, then the reconcile
    reads WeCom (new) and plans. It writes the old departments to WeCom: the member's
    WeCom change is reverted in WeCom, and WeCom's callback of that write is taken for
    downstream's echo (its intent), so Authing keeps the new departments and the two
    sides stay apart until some later change. The conflict rule (README) has downstream
    wait for upstream: a run's writes are now held as a claim's are (to what upstream had
    written when the run began to read), and the refused write is a skipped item."""
    hold = ReconcileMidWrite()

    async def read_all() -> None:
        if hold.armed and hold.wrote_first.is_set():
            hold.read = True

    wrap(monkeypatch, AuthingClient, "send_planned", after=hold.after_upstream_write)
    wrap(monkeypatch, AuthingSource, "snapshot", after=read_all)
    wrap(monkeypatch, WeComTarget, "snapshot", before=hold.before_reconcile_look)
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_member(s)
        hold.arm(s)
        s.wecom.admin.update_user("zhangsan", name="张三丰", department=[2, 3])
        eventually(hold.wrote_first.is_set, 10)
        run = finished(s, start(s, {"direction": "downstream"}))
        s.settle()
        assert hold.read, "the reconcile read Authing between upstream's requests"
        assert run["status"] == "succeeded", run
        user_id = s.user("zhangsan")["userId"]  # type: ignore[index]
        [item] = [i for i in run["items"] if i["key"] == user_id]
        assert item["status"] == "skipped" and "written by upstream" in item["error"], item
        assert s.user_open_departments("zhangsan") == {"2", "3"}
        assert sorted(wecom_user(s, "zhangsan")["department"]) == [2, 3]  # type: ignore[index]
        no_dead(s)


class RunMidWrite:
    """An upstream reconcile's write of one user to Authing, in two requests (the
    profile, then the memberships), with downstream's webhook handled in between:
    the run's first request returns once downstream has read the Authing user; downstream
    looks at WeCom once the run's second request has returned; that request returns once
    downstream has tried its WeCom write (or after ten seconds: none came)."""

    def __init__(self) -> None:
        self.armed = False
        self.requests = 0
        self.read = False
        self.second_done = False
        self.wecom_write = False

    @staticmethod
    async def _until(done: Any) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not done():
            await asyncio.sleep(0.02)

    async def after_upstream_request(self) -> None:
        if not self.armed:
            return
        self.requests += 1
        if self.requests == 1:
            await self._until(lambda: self.read)
        elif self.requests == 2:
            self.second_done = True
            await self._until(lambda: self.wecom_write)
            self.armed = False


def test_a_webhook_during_an_upstream_reconcile_does_not_revert_wecom(
        sqlite_url: str, keys: CallbackKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """In ``both``, a member changed in WeCom whose callback was lost is written to
    Authing by an upstream reconcile, profile first. Downstream handles the webhook of
    the profile write while the run goes on: it reads the Authing user half written (new
    name, old departments) and pushes the old departments to WeCom, the change's source,
    since the hold only refuses while upstream holds an open event about the member or
    has recorded a write of the Authing user since the claim, and a run records its writes
    when it ends. The next webhook (the memberships) then writes WeCom again: two WeCom
    writes, the first reverting the member's change (the fault 3b6097b fixed for
    callbacks). The run now records its intents before it writes
    (``engine.echo.RunIntents``), and the hold refuses while one is in flight."""
    hold = RunMidWrite()

    async def read_user() -> None:
        if hold.armed and hold.requests == 1:
            hold.read = True

    async def member() -> None:
        if hold.armed and hold.read:
            await hold._until(lambda: hold.second_done)

    async def user_update() -> None:
        hold.wecom_write = True

    wrap(monkeypatch, AuthingClient, "send_planned", after=hold.after_upstream_request)
    wrap(monkeypatch, AuthingSource, "read_user", after=read_user)
    wrap(monkeypatch, LinkIds, "member", before=member)
    wrap(monkeypatch, WeComClient, "user_update", before=user_update)
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_writes = wecom_member(s)
        s.wecom.pusher.drop_next(1)  # the change's callback is lost: the run applies it
        s.wecom.admin.update_user("zhangsan", name="张三丰", department=[2, 3])
        hold.armed = True
        run = finished(s, start(s, {"direction": "upstream"}))
        s.settle()
        assert run["status"] == "succeeded", run
        assert hold.read, "downstream read the Authing user between the run's requests"
        assert s.user_open_departments("zhangsan") == {"2", "3"}
        assert s.wecom.faults.stats.total_writes == wecom_writes, s.wecom.faults.stats
        no_dead(s)


def test_an_authing_edit_reverted_by_upstream_meanwhile_is_not_pushed_to_wecom(
        sqlite_url: str, keys: CallbackKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """In ``both``: an Authing admin renames a member; downstream claims the webhook and
    reads the new name; before it looks at WeCom, an operator's sync-now of the member
    runs upstream, which writes WeCom's name back over the edit (WeCom's state is
    applied first: the conflict rule). Downstream then pushed the stale Authing name to
    WeCom, and the webhook of upstream's write put WeCom's back: two WeCom writes, the
    first reverting WeCom. The hold refused a write only when upstream's digests differed
    from those the claim read, and upstream's revert leaves the very digest it wrote
    before (the same WeCom state); it now refuses one recorded since the claim too."""
    import threading

    released = threading.Event()
    state = {"armed": False, "read": False, "held": False}

    async def read_user() -> None:
        if state["armed"]:
            state["read"] = True

    async def member() -> None:
        if state["armed"] and not state["held"]:
            state["held"] = True  # the webhook's look; the sync-now's own goes on
            deadline = time.monotonic() + 20.0
            while not released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

    wrap(monkeypatch, AuthingSource, "read_user", after=read_user)
    wrap(monkeypatch, LinkIds, "member", before=member)
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("zhangsan", "张三", department=(2,), mobile="13800000000")
        s.settle()
        user_id = s.user("zhangsan")["userId"]  # type: ignore[index]
        wecom_writes = s.wecom.faults.stats.total_writes
        state["armed"] = True
        s.authing.admin.update_user(user_id, name="张三A")
        eventually(lambda: state["read"] and state["held"], 10)
        reply = httpx.post(f"{s.url}/ops/sync/users/zhangsan", headers=OPS)
        assert reply.status_code == 202, reply.text
        eventually(lambda: s.events(source="ops")
                   and all(e["status"] == "done" for e in s.events(source="ops")), 20)
        assert s.user("zhangsan")["name"] == "张三"  # type: ignore[index]  # WeCom's won
        released.set()
        s.settle()
        wecom_name = wecom_user(s, "zhangsan")["name"]  # type: ignore[index]
        assert (s.user("zhangsan")["name"], wecom_name) == ("张三", "张三"), \
            s.wecom.faults.stats  # type: ignore[index]
        assert s.wecom.faults.stats.total_writes == wecom_writes, s.wecom.faults.stats
        no_dead(s)


def test_an_upstream_run_write_that_failed_holds_downstream_only_within_the_bound(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """An upstream run's write that failed leaves its intent behind, never caught up by a
    settled write. While it is younger than ``IN_FLIGHT_BOUND`` it is a write in flight,
    and an Authing edit of the user waits (retried); past the bound it holds nothing, and
    the edit reaches WeCom."""
    from datetime import timedelta

    from sync_core.directory.vocabulary import Direction
    from sync_core.engine.echo import IN_FLIGHT_BOUND
    from sync_core.store import links

    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("zhangsan", "张三", department=(2,), mobile="13800000000")
        s.settle()
        user_id = s.user("zhangsan")["userId"]  # type: ignore[index]
        engine = make_engine(sqlite_url)

        def intent(age: timedelta) -> None:
            with engine.begin() as conn:
                links.record(conn, direction=links.intents_of(Direction.UPSTREAM),
                             now=utcnow() - age, rows=[
                                 links.LinkRow("user", "zhangsan", user_id, "never-written")])

        try:
            intent(timedelta(0))  # a run's write, failed just now (after upstream settled)
            s.authing.admin.update_user(user_id, name="张三A")
            eventually(lambda: any("upstream" in str(e.get("last_error") or "")
                                   for e in s.events(source="authing")), 10,
                       lambda: f"{s.events(source='authing')}")
            assert wecom_user(s, "zhangsan")["name"] == "张三"  # type: ignore[index]
            intent(IN_FLIGHT_BOUND + timedelta(seconds=5))  # the same, past the bound
            s.settle()
        finally:
            engine.dispose()
        assert wecom_user(s, "zhangsan")["name"] == "张三A"  # type: ignore[index]
        no_dead(s)
