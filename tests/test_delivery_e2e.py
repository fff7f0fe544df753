"""Issue 11: the service ends right under any order of delivery WeCom really produces.

End to end over real HTTP: the WeCom simulator's pusher delivers (and holds back, reorders
or loses) encrypted callbacks to a running receiver with its worker; the Authing simulator
is the target. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import httpx
import pytest

from sync_core.store import queue
from sync_core.store.db import make_engine
from sync_core.store.models import utcnow

from .conftest import CallbackKeys
from .e2e_stack import OPS, Stack, eventually, running_stack


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


# -- kind 3: a child that arrives before its parent waits, it is not dead ----------------


MODES = [pytest.param(False, id="reads"), pytest.param(True, id="restricted")]


@pytest.mark.parametrize("restricted", MODES)
def test_child_department_before_its_parent(db_url: str, keys: CallbackKeys,
                                            restricted: bool) -> None:
    """The parent's create_party is retried by WeCom (held) while its child, a grandchild
    and a move below it arrive: they read the parent from WeCom and create it first, or,
    where WeCom refuses reads, wait for it with backoff. None goes dead."""
    with running_stack(db_url, keys) as s:
        s.wecom.admin.create_department("销售部", 1, id=40)
        s.settle()
        if restricted:
            s.wecom.fail_next("department/get", errcode=60020, times=10_000)  # untrusted IP
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.create_department("华东区", 1, id=41)  # held: its first try failed
        s.wecom.admin.create_department("上海", 41, id=42)
        s.wecom.admin.create_department("浦东", 42, id=43)
        s.wecom.admin.update_department(40, parentid=42)  # an existing one moves below it
        s.wecom.pusher.flush()
        eventually(lambda: not s.events(status="pending"), 30)
        if not restricted:  # re-read: the child created its ancestors first
            s.settle()
            assert "41" in s.departments()
        s.wecom.pusher.release()
        s.settle(timeout=60)
        depts = s.departments()
        assert {k: depts[k].name for k in ("41", "42", "43")} == {
            "41": "华东区", "42": "上海", "43": "浦东"}
        assert s.open_id_of(depts["42"].parent_id) == "41"
        assert s.open_id_of(depts["43"].parent_id) == "42"
        assert s.open_id_of(depts["40"].parent_id) == "42"
        assert not s.events(status="dead")


def test_child_of_a_lost_parent_waits_for_the_reconcile(db_url: str,
                                                        keys: CallbackKeys) -> None:
    """WeCom gave up on the parent's callback and refuses department reads: the child
    waits (retried past the attempt limit, not dead) until a reconcile has created the
    parent, then it lands."""
    with running_stack(db_url, keys, worker_max_attempts=2) as s:
        s.wecom.fail_next("department/get", errcode=60020, times=10_000)  # untrusted IP
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.create_department("华北区", 1, id=51)
        s.wecom.admin.create_department("北京", 51, id=52)
        s.wecom.pusher.flush()
        waiting = eventually(lambda: [e for e in s.events(status="failed")
                                      if e["entity_key"] == "52" and e["attempts"] >= 3], 60)
        assert "51" in waiting[0]["last_error"]
        assert not s.events(status="dead")
        s.wecom.faults.clear()  # the IP is trusted again; a reconcile runs
        _reconcile(s, "create_update")
        depts = s.departments()
        assert s.open_id_of(depts["52"].parent_id) == "51"
        assert not s.events(status="dead")


# -- kind 2: a userid rename moves the account, whatever happens to its callbacks -------


def _accounts_of(s: Stack, name: str) -> list[dict[str, object]]:
    """Every Authing account of the member called ``name`` (status and externalId)."""
    with s.authing.state.lock:
        return [{"userId": u.user_id, "externalId": u.profile.get("externalId"),
                 "status": u.status}
                for u in s.authing.state.users.values() if u.profile.get("name") == name]


def _member(s: Stack, userid: str, name: str, *, withheld: bool) -> str:
    """A member synced to Authing; returns the id of its account. ``withheld``: user/get
    keeps mobile and email back, as for apps created after 2022-06-20."""
    s.wecom.configure(withhold_sensitive=withheld)
    s.wecom.admin.create_user(userid, name, department=(1,), email=f"{userid}@example.com")
    s.settle()
    return str(s.user(userid)["userId"])


def _reconcile(s: Stack, mode: str) -> dict[str, object]:
    """Start a run and wait until it and the events it may leave have settled."""
    assert httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                      json={"mode": mode}).status_code == 202
    s.settle(timeout=60)
    return eventually(lambda: [r for r in httpx.get(f"{s.url}/ops/runs", headers=OPS)
                               .json()["runs"] if r["status"] not in ("queued", "running")])[0]


def _one_account_moved(s: Stack, name: str, original: str, userid: str) -> None:
    assert _accounts_of(s, name) == [
        {"userId": original, "externalId": userid, "status": "Activated"}]
    assert not s.events(status="dead")


def test_overtaken_rename_moves_the_original_account(db_url: str, keys: CallbackKeys) -> None:
    """zhangsan → zhangsan01, then an edit; mobile and email are withheld. The edit for
    zhangsan01 arrives first: no second account, and the original carries zhangsan01."""
    with running_stack(db_url, keys, trimmed=True) as s:
        original = _member(s, "zhangsan", "张三", withheld=True)
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.rename_user("zhangsan", "zhangsan01")  # its first delivery failed
        s.wecom.admin.update_user("zhangsan01", position="经理")
        s.wecom.pusher.flush()
        eventually(lambda: [e for e in s.events() if e["entity_key"] == "zhangsan01"
                            and e["attempts"] >= 1 and e["status"] != "pending"], 30)
        assert len(_accounts_of(s, "张三")) == 1  # no second account was created
        s.wecom.pusher.release()
        s.settle(timeout=60)
        _one_account_moved(s, "张三", original, "zhangsan01")
        assert s.user("zhangsan01")["username"] == "zhangsan01"


@pytest.mark.parametrize("withheld", [pytest.param(False, id="readable"),
                                      pytest.param(True, id="withheld")])
def test_chained_renames_with_the_first_delayed(db_url: str, keys: CallbackKeys,
                                                withheld: bool) -> None:
    """dave → dave2 → dave3; the first event meets Authing 503s for a while, so the second
    (keyed dave2, another entity) runs first. dave's account ends as dave3, active."""
    with running_stack(db_url, keys, trimmed=withheld) as s:
        original = _member(s, "dave", "大卫", withheld=withheld)
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.rename_user("dave", "dave2")
        s.wecom.admin.rename_user("dave2", "dave3")
        s.authing.admin.fail("update-user", http_status=503, times=3)
        s.wecom.pusher.release()
        s.settle(timeout=90)
        _one_account_moved(s, "大卫", original, "dave3")


ORDERS = list(itertools.permutations(range(3)))


@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
def test_rename_chain_of_three_in_every_order(db_url: str, keys: CallbackKeys,
                                              order: tuple[int, ...]) -> None:
    """u0 → u1 → u2 → u3, the three callbacks delivered in every order, payloads trimmed
    and mobile/email withheld: the original account ends as u3, active, and alone."""
    with running_stack(db_url, keys, trimmed=True) as s:
        original = _member(s, "u0", "链条", withheld=True)
        s.wecom.pusher.hold_next(3)
        for i in range(3):
            s.wecom.admin.rename_user(f"u{i}", f"u{i + 1}")
        held = s.wecom.pusher.held
        for i in order:
            s.wecom.pusher.release([held[i].seq])
            s.wecom.pusher.flush()
            eventually(lambda: not s.events(status="pending"), 30)
        s.settle(timeout=90)
        _one_account_moved(s, "链条", original, "u3")


def test_lost_rename_is_recognised_by_the_reconciler(db_url: str, keys: CallbackKeys) -> None:
    """WeCom gives up on a rename callback in a stream of changes; a full reconcile moves
    the account (matched by its email) instead of creating a second one and resigning it."""
    with running_stack(db_url, keys) as s:
        for i in range(4):
            s.wecom.admin.create_user(f"m{i}", f"成员{i}", department=(1,),
                                      email=f"m{i}@example.com")
        s.settle()
        original = s.user("m1")["userId"]
        s.wecom.admin.update_user("m0", position="组长")
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.rename_user("m1", "m1x")  # lost
        s.wecom.admin.update_user("m2", position="组员")
        s.settle()
        run = _reconcile(s, "full")
        assert run["status"] == "succeeded", run
        _one_account_moved(s, "成员1", original, "m1x")
        assert s.user("m1x")["email"] == "m1@example.com"


def test_lost_rename_with_withheld_fields_is_recognised_by_the_reconciler(
        db_url: str, keys: CallbackKeys) -> None:
    """The same with mobile and email withheld: the only evidence is that m1 left WeCom and
    m1x, unique in name and departments, appeared."""
    with running_stack(db_url, keys, trimmed=True) as s:
        s.wecom.configure(withhold_sensitive=True)
        s.wecom.admin.create_department("研发部", 1, id=2)
        for i in range(3):
            s.wecom.admin.create_user(f"w{i}", f"成员{i}", department=(2,),
                                      email=f"w{i}@example.com")
        s.settle()
        original = s.user("w1")["userId"]
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.rename_user("w1", "w1x")  # lost
        s.settle()
        assert _reconcile(s, "full")["status"] == "succeeded"
        _one_account_moved(s, "成员1", original, "w1x")


@pytest.mark.parametrize("withheld", [pytest.param(False, id="readable"),
                                      pytest.param(True, id="withheld")])
def test_edit_after_a_lost_rename(db_url: str, keys: CallbackKeys, withheld: bool) -> None:
    """WeCom gave up on the rename; the member's next edit is the first word of m9x. With
    the email readable the worker moves the account (the email proves the member); with
    mobile and email withheld nothing proves it: no second account is created, the old
    one is suspended, and the edit goes dead saying why, for an operator or a reconcile."""
    with running_stack(db_url, keys, trimmed=True, worker_max_attempts=2) as s:
        original = _member(s, "m9", "九号", withheld=withheld)
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.rename_user("m9", "m9x")  # lost
        s.wecom.admin.update_user("m9x", position="主管")
        if not withheld:
            s.settle()
            _one_account_moved(s, "九号", original, "m9x")
            return
        dead = eventually(lambda: s.events(status="dead"), 30)
        assert [e["entity_key"] for e in dead] == ["m9x"]
        assert "possible rename" in dead[0]["last_error"] and "m9" in dead[0]["last_error"]
        assert _accounts_of(s, "九号") == [
            {"userId": original, "externalId": "m9", "status": "Suspended"}]


def test_rename_onto_a_userid_held_by_a_foreign_account_is_visible(
        db_url: str, keys: CallbackKeys) -> None:
    """Another system's account already carries the new userid: the move cannot be made.
    It goes dead saying so, the foreign account is untouched and the old one is suspended."""
    with running_stack(db_url, keys) as s:
        original = _member(s, "qian", "钱", withheld=False)
        foreign = s.authing.admin.create_user(externalId="qian01", username="other-qian",
                                              name="别的系统")["userId"]
        s.wecom.admin.rename_user("qian", "qian01")
        dead = eventually(lambda: s.events(status="dead"), 30)
        assert [e["entity_key"] for e in dead] == ["qian"]
        assert "conflict" in dead[0]["last_error"] and "qian01" in dead[0]["last_error"]
        assert _accounts_of(s, "钱") == [
            {"userId": original, "externalId": "qian", "status": "Suspended"}]
        assert s.user("qian01")["userId"] == foreign
