"""User stories of incremental WeCom → Authing sync, end to end over real HTTP.

The WeCom simulator pushes encrypted callbacks to a running receiver; the worker inside it
re-reads WeCom and applies the difference to the Authing simulator. Assertions are on the
Authing simulator's state.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import CallbackKeys
from .e2e_stack import OPS, Stack, eventually, running_stack

MODES = [
    pytest.param(False, False, id="full-reads"),
    pytest.param(True, False, id="trimmed-reads"),
    pytest.param(False, True, id="full-restricted"),
    pytest.param(True, True, id="trimmed-restricted"),
]


@pytest.mark.parametrize("trimmed, restricted", MODES)
def test_every_change_type_reaches_authing(sqlite_url: str, keys: CallbackKeys,
                                           trimmed: bool, restricted: bool) -> None:
    with running_stack(sqlite_url, keys, trimmed=trimmed, restricted_reads=restricted) as s:
        admin = s.wecom.admin
        admin.create_department("研发部", 1, id=2)
        admin.create_department("后端组", 2, id=3)
        admin.create_user("zhangsan", "张三", department=(2, 3), mobile="13800000000",
                          email="zhangsan@example.com", position="工程师",
                          is_leader_in_dept=[1, 0], main_department=2)
        s.settle()
        depts = s.departments()
        assert depts["2"].name == "研发部" and depts["3"].name == "后端组"
        assert s.open_id_of(depts["3"].parent_id) == "2"
        user = s.user("zhangsan")
        assert user is not None and user["username"] == "zhangsan"
        assert s.user_open_departments("zhangsan") == {"2", "3"}
        assert user["customData"]["wechatwork_user_id"] == "zhangsan"
        if not trimmed:  # the callback itself carried the profile
            assert user["name"] == "张三" and user["email"] == "zhangsan@example.com"
        if not restricted:  # re-read through user/get
            assert user["name"] == "张三" and user["phone"] == "13800000000"

        admin.update_user("zhangsan", name="张三丰")
        admin.update_department(3, parentid=1)  # a move
        s.settle()
        assert s.open_id_of(s.departments()["3"].parent_id) == "1"
        if not (trimmed and restricted):
            assert s.user("zhangsan")["name"] == "张三丰"

        admin.update_user("zhangsan", new_userid="zhangsan001")  # a rename
        s.settle()
        assert s.user("zhangsan") is None
        renamed = s.user("zhangsan001")
        assert renamed is not None and renamed["userId"] == user["userId"]  # no duplicate
        assert renamed["username"] == "zhangsan001"
        assert renamed["customData"]["wechatwork_user_id"] == "zhangsan001"

        tag = admin.create_tag("值班")
        admin.tag_members(tag, add_users=["zhangsan001"])
        admin.delete_user("zhangsan001")
        admin.delete_department(3)
        # The two events run side by side. When the department's comes first, Authing
        # refuses the delete (a member left); with reads refused, clearing it cannot read
        # the member: the department waits for the member's own event (it waited out the
        # 60 s read cool-down, beyond this settle).
        s.settle()
        gone = s.user("zhangsan001")
        assert gone is not None and gone["status"] == "Resigned"  # the default policy
        assert "3" not in s.departments()
        tags = [e for e in s.events(status="done") if e["entity_kind"] == "tag"]
        assert tags, "update_tag is stored and settled"
        assert not s.events(status="dead")


def test_user_event_before_its_department_creates_the_department(sqlite_url: str,
                                                                 keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, trimmed=True) as s:
        s.wecom.pusher.drop_next(2)  # WeCom loses both department callbacks
        s.wecom.admin.create_department("市场部", 1, id=7)
        s.wecom.admin.create_department("华南区", 7, id=8)
        s.wecom.admin.create_user("lisi", "李四", department=(8,), email="lisi@example.com")
        s.settle()
        depts = s.departments()
        assert depts["7"].name == "市场部" and depts["8"].name == "华南区"
        assert s.open_id_of(depts["8"].parent_id) == "7"
        assert s.user_open_departments("lisi") == {"8"}


def test_department_event_before_its_parent_creates_the_parent(db_url: str,
                                                               keys: CallbackKeys) -> None:
    # The parent's callback is lost (or its event is still in flight): the child's event
    # creates the parent first, as a user's event does, instead of failing for good.
    with running_stack(db_url, keys) as s:
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.create_department("研发中心", 1, id=20)
        s.wecom.admin.create_department("平台组", 20, id=21)
        s.settle()
        depts = s.departments()
        assert depts["20"].name == "研发中心" and s.open_id_of(depts["21"].parent_id) == "20"
        assert not s.events(status="dead")


def test_duplicate_deliveries_apply_once(sqlite_url: str, keys: CallbackKeys) -> None:
    from sync_core.wecom.crypto import WeComCrypto

    from .helpers import signed_post

    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_user("wangwu", "王五", department=(1,), email="ww@example.com")
        s.settle()
        crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
        plaintext = s.wecom.pusher.deliveries[-1].plaintext
        for _ in range(3):
            params, body = signed_post(crypto, plaintext, keys.corp_id)
            assert httpx.post(f"{s.url}/wecom/callback", params=params,
                              content=body).text == "success"
        s.settle()
        users = [u for u in s.authing.state.users.values()
                 if u.profile.get("externalId") == "wangwu"]
        assert len(users) == 1
        # The first copy was read before the others came: they are new hints (issue 11,
        # kind 1), collapsed only into one another while still waiting, and all settle.
        copies = [e for e in s.events() if e["entity_key"] == "wangwu"]
        assert 2 <= len(copies) <= 4 and {e["status"] for e in copies} == {"done"}


def test_authing_outage_and_rate_limits_are_ridden_out(sqlite_url: str,
                                                       keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        s.authing.admin.fail("create-user", http_status=503, times=4)
        s.authing.admin.fail("get-user", http_status=429, times=3)
        s.wecom.admin.create_user("zhaoliu", "赵六", department=(1,), email="zl@example.com")
        s.settle(timeout=60)
        assert s.user("zhaoliu")["email"] == "zl@example.com"
        assert not s.events(status="dead")


def test_tokens_expiring_mid_stream(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_user("u1", "甲", department=(1,), email="u1@example.com")
        s.settle()
        s.wecom.tokens.expire_all()
        s.authing.admin.set_token_ttl(1)
        eventually(lambda: s.authing.tokens is not None, 1)
        import time

        time.sleep(1.2)  # let the issued Authing token expire for real
        s.wecom.admin.create_user("u2", "乙", department=(1,), email="u2@example.com")
        s.wecom.tokens.revoke_all()
        s.wecom.admin.update_user("u1", name="甲二")
        s.settle()
        assert s.user("u2") is not None and s.user("u1")["name"] == "甲二"
        assert not s.events(status="dead")


def test_a_hundred_departments_with_chinese_names(sqlite_url: str, keys: CallbackKeys) -> None:
    names = [f"第{i}事业部" for i in range(100)]
    with running_stack(sqlite_url, keys) as s:
        for i, name in enumerate(names):
            parent = 1 if i < 10 else 10 + i % 10  # two levels
            s.wecom.admin.create_department(name, parent, id=10 + i)
        s.settle(timeout=60)
        depts = s.departments()
        assert all(depts[str(10 + i)].name == name for i, name in enumerate(names))
        assert s.open_id_of(depts["55"].parent_id) == "15"


def test_an_unchanged_entity_costs_no_authing_writes(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_department("财务部", 1, id=4)
        s.wecom.admin.create_user("qianqi", "钱七", department=(4,), mobile="13900000000")
        s.settle()
        before = s.authing.stats.total_writes
        for path in ("/ops/sync/users/qianqi", "/ops/sync/departments/4"):
            assert httpx.post(f"{s.url}{path}", headers=OPS).status_code == 202
        s.settle()
        assert s.authing.stats.total_writes == before
        ops = [e for e in s.events(source="ops")]
        assert len(ops) == 2 and all(e["status"] == "done" for e in ops)


def test_unmanaged_authing_user_is_not_taken_over(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        s.authing.admin.create_user(email="sunba@example.com", name="孙八(手工)")
        s.wecom.admin.create_user("sunba", "孙八", department=(1,), email="sunba@example.com")
        s.settle()
        dead = s.events(status="dead")
        assert [e["entity_key"] for e in dead] == ["sunba"]
        assert "conflict: unmanaged Authing user" in dead[0]["last_error"]
        assert s.user("sunba") is None


def test_adopt_existing_links_the_unmanaged_user(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, adopt_existing=True) as s:
        manual = s.authing.admin.create_user(email="zhou@example.com", name="周九")
        s.wecom.admin.create_user("zhoujiu", "周九", department=(1,), email="zhou@example.com")
        s.settle()
        adopted = s.user("zhoujiu")
        assert adopted is not None and adopted["userId"] == manual["userId"]


def test_non_empty_department_delete_retries_then_goes_dead_and_replays(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, worker_max_attempts=2) as s:
        s.wecom.admin.create_department("临时组", 1, id=5)
        s.wecom.admin.create_user("wu", "吴", department=(5,), email="wu@example.com")
        s.settle()
        # An Authing account no WeCom member mirrors sits in the department: the delete
        # waits for it, and finally gives up with the reason. (WeCom's member, whose own
        # callback is lost, is re-read by the delete and follows WeCom.)
        a = s.authing.admin
        local = a.create_user(username="local", name="本地", email="local@example.com")
        a.set_user_departments(local["userId"], [{"departmentId": s.departments()["5"]
                                                  .department_id}])
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.update_user("wu", department=[1])
        s.wecom.admin.delete_department(5)
        s.wecom.pusher.flush()
        dead = eventually(lambda: s.events(status="dead"), 30)
        assert dead[0]["entity_key"] == "5" and "not empty" in dead[0]["last_error"]
        assert "5" in s.departments() and s.user_open_departments("wu") == {"1"}
        # The operator fixes the cause, then replays.
        a.set_user_departments(local["userId"], [])
        reply = httpx.post(f"{s.url}/ops/events/{dead[0]['id']}/replay", headers=OPS)
        assert reply.status_code == 202 and reply.json()["event"]["status"] == "pending"
        s.settle()
        assert "5" not in s.departments()
        assert httpx.post(f"{s.url}/ops/events/99999/replay", headers=OPS).status_code == 404
        assert httpx.post(f"{s.url}/ops/events/x/replay", headers=OPS).status_code == 400


@pytest.mark.postgres
def test_sync_on_postgres(pg_url: str, keys: CallbackKeys) -> None:
    with running_stack(pg_url, keys) as s:
        s.wecom.admin.create_department("运维部", 1, id=6)
        s.wecom.admin.create_user("ops1", "运维一", department=(6,), email="ops1@example.com")
        s.settle()
        assert s.user_open_departments("ops1") == {"6"}


def test_every_write_records_what_it_mirrors(sqlite_url: str, keys: CallbackKeys) -> None:
    from sqlalchemy import text

    from sync_core.store.db import make_engine

    with running_stack(sqlite_url, keys) as s:
        s.wecom.pusher.drop_next(1)  # the department arrives only through the user event
        s.wecom.admin.create_department("法务部", 1, id=9)
        s.wecom.admin.create_user("feng", "冯", department=(9,), email="feng@example.com")
        s.settle()
        s.wecom.admin.update_user("feng", name="冯一")
        s.settle()
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            rows = {(r.kind, r.source_key): r
                    for r in conn.execute(text("SELECT * FROM links"))}
        engine.dispose()
    assert set(rows) == {("user", "feng"), ("department", "9")}
    assert rows[("user", "feng")].target_id == s.user("feng")["userId"]
    assert all(r.direction == "upstream" for r in rows.values())


def test_an_update_for_a_user_authing_lacks_creates_it(sqlite_url: str,
                                                       keys: CallbackKeys) -> None:
    # The create callback is lost; the update's speculative membership read by externalId
    # finds no user, and the event still ends in a create.
    with running_stack(sqlite_url, keys) as s:
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.create_user("qian", "钱", department=(1,), email="qian@example.com")
        s.wecom.admin.update_user("qian", name="钱一")
        s.settle()
        assert s.user("qian")["name"] == "钱一"
        assert s.user_open_departments("qian") == {"1"}
        assert [e["status"] for e in s.events() if e["entity_key"] == "qian"] == ["done"]


def test_the_worker_rides_out_a_database_failure(db_url: str, keys: CallbackKeys,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The step that settles applied entities fails (the table it writes is gone for a
    while): the worker keeps the settlements, retries with backoff, and carries on."""
    from sqlalchemy import text

    from sync_core.store.db import make_engine

    with running_stack(db_url, keys) as s:
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE links RENAME TO links_away"))
            s.wecom.admin.create_user("sun", "孙", department=(1,), email="sun@example.com")
            eventually(lambda: s.user("sun"))  # applied, but it cannot be settled
            eventually(lambda: "database step failed" in caplog.text)
            failures = [r.getMessage() for r in caplog.records
                        if "database step failed" in r.getMessage()]
            # The statement and its parameters (personal data) stay out of the log.
            assert failures and all("[SQL:" not in m and "孙" not in m for m in failures)
            assert [e["status"] for e in s.events() if e["entity_key"] == "sun"] \
                == ["pending"]
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE links_away RENAME TO links"))
            s.settle()
            s.wecom.admin.update_user("sun", name="孙二")  # the loop is still alive
            s.settle()
        finally:
            engine.dispose()
        assert s.user("sun")["name"] == "孙二"
        assert {e["status"] for e in s.events() if e["entity_key"] == "sun"} == {"done"}
        users = [u for u in s.authing.state.users.values()
                 if u.profile.get("externalId") == "sun"]
        assert len(users) == 1


def test_a_replayed_create_for_an_existing_user_updates_it(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    # A create_user event is acted on by creating at once; when Authing refuses because the
    # user exists (here: the event is replayed after someone edited the user in Authing),
    # the worker reads Authing and puts the WeCom state back instead.
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_user("zhou", "周", department=(1,), email="zhou@example.com")
        s.settle()
        s.authing.admin.update_user("zhou", "external_id", name="改过的名字")
        (event,) = [e for e in s.events() if e["entity_key"] == "zhou"]
        assert httpx.post(f"{s.url}/ops/events/{event['id']}/replay",
                          headers=OPS).status_code == 202
        s.settle()
        assert s.user("zhou")["name"] == "周"
        assert [e["status"] for e in s.events() if e["entity_key"] == "zhou"] == ["done"]
        users = [u for u in s.authing.state.users.values()
                 if u.profile.get("externalId") == "zhou"]
        assert len(users) == 1


def test_an_entity_in_flight_at_shutdown_is_finished_and_settled(sqlite_url: str,
                                                                  keys: CallbackKeys) -> None:
    from sqlalchemy import text

    from sync_core.store.db import make_engine

    engine = make_engine(sqlite_url)

    def leased() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM inbox_events WHERE lease_owner IS NOT NULL")).scalar())

    try:
        with running_stack(sqlite_url, keys) as s:
            s.authing.admin.set_latency(300)  # the worker is mid-way when the server stops
            s.wecom.admin.create_user("wu", "吴", department=(1,), email="wu@example.com")
            eventually(leased, 10)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, lease_owner FROM inbox_events "
                                    "WHERE entity_key = 'wu'")).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("done", None)
    assert s.user("wu") is not None


# -- ordering conflicts the source's current tree resolves (callbacks late or lost) -------

def _parent(s: Stack, wecom_id: int) -> str | None:
    depts = s.departments()
    with s.authing.state.lock:
        parent_id = depts[str(wecom_id)].parent_id
        parent = s.authing.state.departments.get(parent_id) if parent_id else None
        return parent.open_department_id if parent is not None else None


def _dead(s: Stack) -> list[str]:
    return [e["last_error"] or "" for e in s.events(status="dead")]


def test_a_move_under_a_former_child_whose_own_move_was_lost(sqlite_url: str,
                                                            keys: CallbackKeys) -> None:
    """A (2) > B (3) > C (4). WeCom moves B to the root (callback lost), keeps C under B,
    then moves A under C, and renames it with the same update. In Authing C is still below
    A, so the move is refused as a cycle; the source's tree says B (then C) go first."""
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_department("甲", 1, id=2)
        s.wecom.admin.create_department("乙", 2, id=3)
        s.wecom.admin.create_department("丙", 3, id=4)
        s.settle()
        s.wecom.pusher.drop_next(1)
        s.wecom.admin.update_department(3, parentid=1)
        s.wecom.admin.update_department(2, parentid=4, name="甲二")
        s.settle()
        assert (_parent(s, 3), _parent(s, 4), _parent(s, 2)) == ("1", "3", "4"), _dead(s)
        assert s.departments()["2"].name == "甲二"
        assert not _dead(s)


def test_a_department_whose_members_and_child_left_without_callbacks_is_deleted(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """WeCom empties department 2 (a member deleted, a member moved to 5, child 3 and its
    member deleted) and deletes it; every callback but the last is lost. The delete re-reads
    what Authing still holds there: the deleted are resigned, the moved one ends in 5,
    the child and the department are deleted."""
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_department("解散部", 1, id=2)
        s.wecom.admin.create_department("子组", 2, id=3)
        s.wecom.admin.create_department("新部", 1, id=5)
        for userid, dept, n in (("gone2", 2, 1), ("moved2", 2, 2), ("gone3", 3, 3)):
            s.wecom.admin.create_user(userid, userid, department=(dept,),
                                      mobile=f"1380000045{n}", email=f"{userid}@example.com")
        s.settle()
        s.wecom.pusher.drop_next(4)
        s.wecom.admin.delete_user("gone2")
        s.wecom.admin.update_user("moved2", department=[5])
        s.wecom.admin.delete_user("gone3")
        s.wecom.admin.delete_department(3)
        s.wecom.admin.delete_department(2)
        s.settle()
        assert "2" not in s.departments() and "3" not in s.departments(), _dead(s)
        assert all((s.user(u) or {}).get("status") != "Activated" for u in ("gone2", "gone3"))
        assert s.user_open_departments("moved2") == {"5"}
        assert not _dead(s)
