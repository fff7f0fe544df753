"""Outages: a remote outage spends time, not the retry budget (issue 12, item 1).

The stacks run with a small attempt budget and a short backoff cap, so an outage of a few
seconds is long relative to the backoff schedule: each entity fails many more times than
``worker_max_attempts`` while it lasts. Those failures are transient (503, 429, WeCom
busy), so the entities ride them out and nothing goes dead; only when transient failures
outlast ``retry_window_hours`` does an entity give up, with that reason.
"""

from __future__ import annotations

import time

from .conftest import CallbackKeys
from .e2e_stack import eventually, running_stack
from .test_reconcile_e2e import finished, seed, start

# One HTTP try per call: every failed call reaches the worker as one failed attempt.
FAST = {"retry_attempts": 1, "worker_max_attempts": 2}  # the stack caps backoff at 1 s


def test_an_authing_outage_then_429_bursts_leave_nothing_dead(db_url: str,
                                                              keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, **FAST) as s:
        admin = s.wecom.admin
        admin.create_department("研发部", 1, id=2)
        s.settle()
        outage_ends = time.monotonic() + 6.0
        s.authing.admin.outage(6.0)  # every Authing call answers HTTP 503 for 6 s
        for i in range(6):  # changes keep arriving during the outage
            admin.create_user(f"u{i}", f"用户{i}", department=(2,), email=f"u{i}@example.com")
            time.sleep(0.5)
        admin.create_department("测试部", 2, id=3)
        admin.update_user("u0", name="用户零", department=[2, 3])
        time.sleep(max(0.0, outage_ends - time.monotonic()))
        for _ in range(3):  # then Authing throttles, in bursts
            s.authing.admin.fail(http_status=429, times=10)
            admin.create_user(f"late{_}", "迟到", department=(3,), email=f"l{_}@example.com")
            time.sleep(0.7)
        s.settle(60)

        assert not s.events(status="dead")
        for i in range(6):
            assert s.user(f"u{i}") is not None, f"u{i}"
        assert s.user("u0")["name"] == "用户零"
        assert s.user_open_departments("u0") == {"2", "3"}
        assert s.departments()["3"].name == "测试部"
        for i in range(3):
            assert s.user_open_departments(f"late{i}") == {"3"}
        # The kind, not luck: entities failed far more often than the attempt budget.
        done = s.events(status="done")
        assert max(e["attempts"] for e in done) > 2 * FAST["worker_max_attempts"]


def test_a_wecom_outage_during_enrichment_leaves_nothing_dead(db_url: str,
                                                              keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, **FAST) as s:
        s.wecom.fail_for(5.0, "user/get")  # errcode -1 (system busy) for 5 s
        s.wecom.fail_for(5.0, "department/get", http_status=503)  # a gateway error
        s.wecom.admin.create_department("市场部", 1, id=4)
        s.wecom.admin.create_user("li", "李", department=(4,), email="li@example.com")
        s.settle(60)
        assert not s.events(status="dead")
        assert s.user("li")["name"] == "李"
        assert s.departments()["4"].name == "市场部"
        done = s.events(status="done")
        assert max(e["attempts"] for e in done) > 2 * FAST["worker_max_attempts"]


def test_transient_failures_past_the_window_end_dead_with_the_reason(
        sqlite_url: str, keys: CallbackKeys) -> None:
    # A window of 1.8 s against an outage that outlasts it.
    with running_stack(sqlite_url, keys, retry_window_hours=0.0005, **FAST) as s:
        s.authing.admin.outage(60.0, "create-user")
        s.wecom.admin.create_user("zhao", "赵", department=(1,), email="zhao@example.com")
        s.wecom.pusher.flush()
        dead = eventually(lambda: s.events(status="dead"), 30)
        assert dead[0]["entity_key"] == "zhao"
        assert "transient failures lasting more than" in dead[0]["last_error"]
        assert "retry_window_hours" in dead[0]["last_error"]
        assert dead[0]["attempts"] > FAST["worker_max_attempts"]


def test_a_permanent_error_still_ends_at_once(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, **FAST) as s:
        s.wecom.admin.create_user("sun", "孙", department=(1,), email="sun@example.com")
        s.settle()
        s.authing.admin.fail("update-user", http_status=200, times=1, payload={
            "statusCode": 400, "message": "参数 name 格式错误", "apiCode": 2231})
        s.wecom.admin.update_user("sun", name="孙二")
        s.wecom.pusher.flush()
        dead = eventually(lambda: s.events(status="dead"), 30)
        assert dead[0]["entity_key"] == "sun" and dead[0]["attempts"] == 1
        assert "BadRequestError" in dead[0]["last_error"]


def test_a_reconcile_rides_out_outages_on_both_sides(db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, **FAST) as s:
        directory = seed(s, users=30, departments=6)
        s.wecom.fail_for(3.0, None, http_status=503)  # the whole WeCom API, while it reads
        s.authing.admin.outage(4.0, "list-users")  # Authing, while it reads
        for endpoint in ("create-department", "create-users-batch", "set-user-departments"):
            s.authing.admin.outage(8.0, endpoint)  # and for a while after: its writes
        run = finished(s, start(s))
        assert run["status"] == "succeeded", run["error"] or [
            i for i in run["items"] if i["status"] == "failed"][:3]
        assert run["counters"]["failed"] == 0
        assert run["counters"]["created"] == len(directory.users) + len(
            directory.departments) - 1
        assert set(s.departments()) == {str(d["id"]) for d in directory.departments}
        for user in directory.users:
            assert s.user_open_departments(user["userid"]) == {
                str(d) for d in user["department"]}, user["userid"]
        assert s.authing.stats.writes["create-department"] > len(directory.departments)
