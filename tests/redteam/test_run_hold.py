"""Red team: a reconcile's writes held as a claim's are (``engine.echo.held_by_run``,
commit 3f4eccb). Each test names the fault it shows, or the case it guards."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from sync_core.authing.target import AuthingTarget
from sync_core.store.models import Link

from ..conftest import CallbackKeys
from ..e2e_stack import Stack, eventually
from ..test_downstream_e2e import downstream, wecom_user
from ..test_downstream_reconcile_e2e import seed_authing
from ..test_echo_before_settlement_e2e import no_dead, wecom_member, wrap
from ..test_reconcile_e2e import finished, start


def down(s: Stack) -> dict[str, Any]:
    return finished(s, start(s, {"direction": "downstream"}), timeout=120)


def held_items(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in run["items"] if "written by upstream" in (i.get("error") or "")]


def silently(s: Stack, user_id: str, **fields: Any) -> None:
    """An Authing change whose webhook is lost: only a run sees it."""
    with s.authing.state.lock:
        s.authing.state.users[user_id].profile.update(fields)


def test_an_initial_downstream_reconcile_in_both_writes_everything(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Upstream idle but handling the callbacks of the run's own writes (another app sees
    them): no write of the run is refused."""
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        seed_authing(s, 30, 4)
        run = down(s)
        assert run["status"] == "succeeded", run
        assert not held_items(run), held_items(run)
        assert len(s.wecom.state.users) == 30
        s.settle()
        again = down(s)
        assert again["status"] == "succeeded" and not held_items(again), again
        no_dead(s)


def test_a_downstream_reconcile_writes_a_user_upstream_wrote_long_before(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """A member created in WeCom (upstream wrote it to Authing), changed in Authing with
    the webhook lost: the run pushes the change."""
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("zhangsan", "张三", department=(2,), mobile="13800000000")
        s.settle()
        user_id = s.user("zhangsan")["userId"]  # type: ignore[index]
        silently(s, user_id, name="张三丰")
        run = down(s)
        assert run["status"] == "succeeded", run
        assert not held_items(run), held_items(run)
        assert wecom_user(s, "zhangsan")["name"] == "张三丰"  # type: ignore[index]
        s.settle()
        no_dead(s)


def test_a_downstream_reconcile_writes_a_user_renamed_in_wecom(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """A WeCom userid renamed: upstream's link table keeps a row per userid, both naming
    the one Authing user. The run's hold took one digest (``every_write_by_opposite``, a
    dict by Authing id) where the check reads both (``written_by_opposite``): the held
    write never matched, and every run skipped the user."""
    with downstream(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("zhangsan", "张三", department=(2,), mobile="13800000000")
        s.settle()
        s.wecom.admin.rename_user("zhangsan", "zhangsan2")
        s.settle()
        user = s.user("zhangsan2")
        assert user is not None
        engine = create_engine(sqlite_url)
        with engine.connect() as conn:
            rows = conn.execute(select(Link.__table__.c.source_key).where(  # type: ignore[attr-defined]
                Link.__table__.c.direction == "upstream",  # type: ignore[attr-defined]
                Link.__table__.c.target_id == user["userId"])).all()  # type: ignore[attr-defined]
        engine.dispose()
        assert len(rows) == 2, rows  # the old userid's row and the new one's
        silently(s, user["userId"], name="张三丰")
        run = down(s)
        assert run["status"] == "succeeded", run
        assert not held_items(run), (rows, held_items(run))
        assert wecom_user(s, "zhangsan2")["name"] == "张三丰"  # type: ignore[index]
        s.settle()
        no_dead(s)


class UpstreamHeld:
    """Upstream's handling of WeCom user events waits, once armed, until released."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = False
        self.released = False

    async def before(self) -> None:
        if not self.armed:
            return
        self.entered = True
        deadline = time.monotonic() + 20.0
        while not self.released and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


def test_a_downstream_reconcile_change_skipped_for_an_open_echo_is_not_lost(
        sqlite_url: str, keys: CallbackKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    """In ``both``: downstream writes a member's Authing change to WeCom (a webhook), and
    WeCom's callback of that write waits in upstream's inbox (upstream busy). A second
    Authing change of the member, whose webhook was lost, is then found by a downstream
    reconcile; its write is refused (``_upstream_open``) and skipped ("upstream's write
    comes back as a webhook", README). Upstream then settles its event as the echo it
    is, and writes nothing: the second change stayed out of WeCom until another run. The
    run now queues a refused entity for the worker, which reads it again after upstream."""
    held = UpstreamHeld()
    wrap(monkeypatch, AuthingTarget, "write_back_echo", before=held.before)
    with downstream(sqlite_url, keys, direction="both") as s:
        wecom_member(s)
        s.wecom.switches.callback_api_writes = True
        user_id = s.user("zhangsan")["userId"]  # type: ignore[index]
        held.armed = True
        s.authing.admin.update_user(user_id, name="张三丰")
        eventually(lambda: held.entered
                   and wecom_user(s, "zhangsan")["name"] == "张三丰", 20)  # type: ignore[index]
        silently(s, user_id, name="张三丰二")
        run = down(s)
        held.released = True
        s.settle()
        assert run["status"] == "succeeded", run
        assert wecom_user(s, "zhangsan")["name"] == "张三丰二", (  # type: ignore[index]
            held_items(run))
        no_dead(s)
