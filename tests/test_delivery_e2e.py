"""Issue 11: the service ends right under any order of delivery WeCom really produces.

End to end over real HTTP: the WeCom simulator's pusher delivers (and holds back, reorders
or loses) encrypted callbacks to a running receiver with its worker; the Authing simulator
is the target. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from sync_core.store import queue
from sync_core.store.db import make_engine
from sync_core.store.models import utcnow

from .conftest import CallbackKeys
from .e2e_stack import Stack, running_stack


def _frozen_second(s: Stack) -> None:
    """WeCom's CreateTime has whole seconds: every callback from now on shares one."""
    second = float(int(time.time()))
    s.wecom.pusher.clock = lambda: second


def _identical_last_two(s: Stack) -> None:
    last, before = s.wecom.pusher.deliveries[-1], s.wecom.pusher.deliveries[-2]
    assert last.plaintext == before.plaintext  # byte-identical, as WeCom's are


# -- kind 1: a real change is not a duplicate -------------------------------------------


def test_identical_callback_after_the_read_is_applied(db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, trimmed=True) as s:
        s.wecom.admin.create_user("hetao", "何涛", department=(1,), email="hetao@example.com")
        s.settle()
        _frozen_second(s)
        s.wecom.admin.disable_user("hetao")
        s.settle()
        assert s.user("hetao")["status"] == "Suspended"
        s.wecom.admin.enable_user("hetao")  # the same second: the same trimmed bytes
        s.settle()
        _identical_last_two(s)
        assert s.user("hetao")["status"] == "Activated"


def test_identical_department_callback_after_the_read_is_applied(db_url: str,
                                                                 keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, trimmed=True) as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_department("后端组", 2, id=3)
        s.settle()
        _frozen_second(s)
        for parent in (1, 2, 1):  # moved out, back, out again: the first and last are equal
            s.wecom.admin.update_department(3, parentid=parent)
            s.settle()
        first_out, _, again_out = s.wecom.pusher.deliveries[-3:]
        assert first_out.plaintext == again_out.plaintext
        assert s.open_id_of(s.departments()["3"].parent_id) == "1"


def test_identical_authing_webhook_after_its_claim_is_stored(db_url: str,
                                                            keys: CallbackKeys) -> None:
    body = {"eventName": "user:updated", "data": {"user": {"id": "u-7", "status": "Suspended"}}}
    hook = {"x-authing-webhook-secret": "hook-secret"}
    with running_stack(db_url, keys, authing_webhook_secret="hook-secret") as s:
        post = lambda: httpx.post(f"{s.url}/authing/webhook", json=body,  # noqa: E731
                                  headers=hook).json()["stored"]
        assert post() == 1
        assert post() == 0  # a redelivery of a hint still waiting collapses into it
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:  # what a consumer of Authing events does first
                claims = queue.claim(conn, owner="downstream", now=utcnow(),
                                     lease=timedelta(seconds=30), max_entities=5,
                                     sources=("authing",))
            assert [c.entity_key for c in claims] == ["u-7"]
            assert post() == 1  # after the claim the same bytes are a new hint
        finally:
            engine.dispose()
        assert [e["entity_key"] for e in s.events(source="authing")] == ["u-7", "u-7"]
