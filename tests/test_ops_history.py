"""Per-event and per-object history, run decisions and the schedule over the ops API."""

from __future__ import annotations

from datetime import timedelta

import httpx

from sync_core.store import attempts, queue, runs
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow

from .conftest import CallbackKeys
from .e2e_stack import OPS, eventually, running_stack
from .test_reconcile_e2e import finished, lose_deletes, seed, start


def _event(conn, key: str = "zhangsan") -> int:  # type: ignore[no-untyped-def]
    now = utcnow() - timedelta(seconds=5)
    insert_new(conn, [NewEvent("wecom", f"d-{key}", "user", key, "update_user",
                               {"user_id": key}, now)])
    from sqlalchemy import text

    return int(conn.execute(text("SELECT id FROM inbox_events WHERE entity_key = :k"),
                            {"k": key}).scalar_one())


def test_every_attempt_is_kept_and_a_replay_adds_to_the_history(engine) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    lease = timedelta(seconds=60)
    with engine.begin() as conn:
        event_id = _event(conn)
        (claim,) = queue.claim(conn, owner="w1", now=now + timedelta(seconds=1), lease=lease,
                               max_entities=4)
        queue.fail(conn, owner="w1", ids=claim.ids, now=now + timedelta(seconds=1),
                   error="TransientError: 503", retry_at=now)
        (claim,) = queue.claim(conn, owner="w1", now=now + timedelta(seconds=2), lease=lease,
                               max_entities=4)
        queue.fail(conn, owner="w1", ids=claim.ids, now=now + timedelta(seconds=3),
                   error="conflict: unmanaged Authing user", retry_at=None)
        assert queue.replay(conn, event_id=event_id, now=now + timedelta(seconds=4),
                            actor="console")
        (claim,) = queue.claim(conn, owner="w2", now=now + timedelta(seconds=5), lease=lease,
                               max_entities=4)
        queue.complete(conn, owner="w2", ids=claim.ids, now=now + timedelta(seconds=6),
                       outcome="updated")
        # A settlement by a worker that lost the lease records nothing.
        queue.complete(conn, owner="w1", ids=claim.ids, now=now, outcome="late")
        history = attempts.of_event(conn, event_id)
    assert [(a["outcome"], a["number"], a["actor"]) for a in history] == [
        ("retry", 1, None), ("dead", 2, None), ("replayed", 0, "console"), ("done", 1, None)]
    assert history[0]["detail"] == "TransientError: 503"
    assert history[1]["detail"] == "conflict: unmanaged Authing user"
    assert history[1]["started_at"] is not None and history[1]["started_at"] < \
        history[1]["finished_at"]


def test_reject_and_cancel_record_who_and_when(engine) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with engine.begin() as conn:
        run_id = runs.create(conn, direction="downstream", mode="full", source="api",
                             dry_run=False, trigger="ops", owner="p1", now=now,
                             lease=timedelta(seconds=60))
        try:
            runs.reject(conn, run_id=run_id, actor="api", now=now)
            raise AssertionError("a queued run cannot be rejected")
        except runs.DecisionError:
            pass
        runs.cancel(conn, run_id=run_id, actor="console", now=now)
        # The run's own process finishing later does not undo the cancellation.
        runs.finish(conn, run_id=run_id, status="succeeded", counters={}, now=now)
        run = runs.as_json(runs.get(conn, run_id))  # type: ignore[arg-type]
        assert run["status"] == "failed" and run["error"] == "cancelled by console"
        assert run["decision"]["decision"] == "cancelled" and run["decision"]["by"] == "console"
        assert runs.renew(conn, run_id=run_id, owner="p1", until=now) is False
        try:
            runs.cancel(conn, run_id=run_id, actor="api", now=now)
            raise AssertionError("a finished run cannot be cancelled")
        except runs.DecisionError:
            pass
        try:
            runs.cancel(conn, run_id=run_id + 100, actor="api", now=now)
            raise AssertionError("no such run")
        except LookupError:
            pass


def test_dead_letter_replayed_and_the_object_history(sqlite_url: str,
                                                     keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        manual = s.authing.admin.create_user(email="sunba@example.com", name="孙八(手工)")
        s.wecom.admin.create_user("sunba", "孙八", department=(1,), email="sunba@example.com")
        s.settle()
        (dead,) = s.events(status="dead")
        first = httpx.get(f"{s.url}/ops/events/{dead['id']}", headers=OPS).json()
        assert [a["outcome"] for a in first["history"]] == ["dead"]
        assert first["payload"]["user_id"] == "sunba" and first["status"] == "dead"

        s.authing.admin.delete_user(manual["userId"])  # the operator removes the clash
        reply = httpx.post(f"{s.url}/ops/events/{dead['id']}/replay", headers=OPS)
        assert reply.status_code == 202
        s.settle()
        after = httpx.get(f"{s.url}/ops/events/{dead['id']}", headers=OPS).json()
        assert [(a["outcome"], a["actor"]) for a in after["history"]] == [
            ("dead", None), ("replayed", "api"), ("done", None)]
        assert after["history"][0]["detail"] == first["history"][0]["detail"]
        assert after["status"] == "done" and after["outcome"]

        # Sync now answers the event's id; its page shows the result once done.
        queued = httpx.post(f"{s.url}/ops/sync/users/sunba", headers=OPS).json()
        done = eventually(lambda: (e := httpx.get(
            f"{s.url}/ops/events/{queued['event_id']}", headers=OPS).json())["status"] == "done"
            and e, 30)
        assert done["entity_key"] == "sunba" and done["source"] == "ops"

        run = finished(s, start(s, {"dry_run": True}))
        history = httpx.get(f"{s.url}/ops/objects/user/sunba", headers=OPS).json()
        authing_id = s.user("sunba")["userId"]
        assert [(link["direction"], link["source_key"]) for link in history["links"]] == [
            ("upstream", "sunba")]
        assert {e["id"] for e in history["events"]} >= {dead["id"], queued["event_id"]}
        assert [r["id"] for r in history["runs"]] == [run["id"]]
        assert history["runs"][0]["item"]["key"] == "sunba"
        # The same object by its Authing id: the upstream write left it on the link.
        assert history["links"][0]["target_id"] == authing_id
        by_target = httpx.get(f"{s.url}/ops/objects/user/{authing_id}", headers=OPS).json()
        assert {e["id"] for e in by_target["events"]} == {e["id"] for e in history["events"]}

        for bad in ("/ops/objects/tag/1", "/ops/objects/user/x?y=1", "/ops/events/0",
                    "/ops/events/abc"):
            assert httpx.get(f"{s.url}{bad}", headers=OPS).status_code == 400, bad
        assert httpx.get(f"{s.url}/ops/events/99999", headers=OPS).status_code == 404
        assert httpx.get(f"{s.url}/ops/objects/user/sunba").status_code == 401


def test_blocked_run_rejected_and_a_finished_run_not_cancelled(sqlite_url: str,
                                                               keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, delete_threshold_count=2) as s:
        directory = seed(s, users=10, departments=3)
        assert finished(s, start(s))["status"] == "succeeded"
        gone = [u["userid"] for u in directory.users[:4]]
        lose_deletes(s, gone)
        blocked = finished(s, start(s, {"mode": "full"}))
        assert blocked["status"] == "blocked"
        reply = httpx.post(f"{s.url}/ops/runs/{blocked['id']}/reject", headers=OPS)
        assert reply.status_code == 200 and reply.json()["status"] == "succeeded"
        run = httpx.get(f"{s.url}/ops/runs/{blocked['id']}", headers=OPS).json()
        assert run["status"] == "succeeded" and run["decision"]["by"] == "api"
        assert run["decision"]["decision"] == "rejected" and run["decision"]["at"]
        rejected = [i for i in run["items"] if i["key"] in gone]
        assert {i["status"] for i in rejected} == {"skipped"}
        assert all("rejected by api" in i["error"] for i in rejected)
        assert all(s.user(u)["status"] == "Activated" for u in gone)
        for action in ("approve", "reject", "cancel"):
            again = httpx.post(f"{s.url}/ops/runs/{blocked['id']}/{action}", headers=OPS)
            assert again.status_code == 409, action
            assert httpx.post(f"{s.url}/ops/runs/9999/{action}", headers=OPS).status_code == 404

        page = httpx.get(f"{s.url}/ops/runs/{blocked['id']}", headers=OPS,
                         params={"limit": "2", "offset": "1"}).json()
        assert [i["key"] for i in page["items"]] == [i["key"] for i in run["items"][1:3]]
        listed = httpx.get(f"{s.url}/ops/runs", headers=OPS).json()
        assert listed["schedule"]["upstream"]["cron"] == "0 3 */2 * *"
        assert listed["schedule"]["upstream"]["next_run_at"]


def test_migration_console_attempts_is_reversible(db_url: str) -> None:
    from sqlalchemy import inspect

    from sync_core.store import migrate
    from sync_core.store.db import make_engine

    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        inspector = inspect(engine)
        assert "event_attempts" in inspector.get_table_names()
        assert {"decision", "decided_by", "decided_at"} <= {
            c["name"] for c in inspector.get_columns("runs")}
        migrate.downgrade(engine, "0007_engine")
        inspector = inspect(engine)
        assert "event_attempts" not in inspector.get_table_names()
        assert "claimed_at" not in {c["name"] for c in inspector.get_columns("inbox_events")}
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision() == "0009_links_target"
    finally:
        engine.dispose()


def test_cancel_stops_a_running_run_and_it_stays_cancelled(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=40, departments=4)
        s.authing.admin.set_latency(1500)  # slow enough to catch the run while it writes
        run_id = start(s)
        eventually(lambda: len(s.departments()) > 1, 60)  # it is writing
        reply = httpx.post(f"{s.url}/ops/runs/{run_id}/cancel", headers=OPS)
        assert reply.status_code == 200 and reply.json()["status"] == "failed"
        s.authing.admin.set_latency(0)
        # The run's task records what it applied, and the cancellation stands.
        run = eventually(lambda: (r := httpx.get(f"{s.url}/ops/runs/{run_id}",
                                                 headers=OPS).json())["items"] and r, 30)
        assert run["status"] == "failed" and run["error"] == "cancelled by api"
        assert run["decision"]["decision"] == "cancelled"
        created = [u for u in directory.users if s.user(u["userid"])]
        assert len(created) < len(directory.users)  # it stopped before the end
        # The direction is free again.
        assert finished(s, start(s))["status"] == "succeeded"


def test_a_dry_run_the_guard_would_block_is_blocked_with_nothing_to_decide(
        sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, delete_threshold_count=2) as s:
        directory = seed(s, users=10, departments=3)
        assert finished(s, start(s))["status"] == "succeeded"
        gone = [u["userid"] for u in directory.users[:4]]
        lose_deletes(s, gone)
        dry = finished(s, start(s, {"mode": "full", "dry_run": True}))
        assert dry["status"] == "blocked" and dry["dry_run"] is True
        assert dry["error"].startswith("would block: ")
        assert not [i for i in dry["items"] if i["status"] == "staged"]
        for action in ("approve", "reject"):
            refused = httpx.post(f"{s.url}/ops/runs/{dry['id']}/{action}", headers=OPS)
            assert refused.status_code == 409 and "dry run" in refused.text, refused.text
        assert all(s.user(u)["status"] == "Activated" for u in gone)


def test_status_names_the_last_success_never_a_partial_run(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        engine = make_engine(sqlite_url)
        now = utcnow()
        with engine.begin() as conn:
            ids = []
            for status in ("succeeded", "partial"):
                run_id = runs.create(conn, direction="upstream", mode="full", source="api",
                                     dry_run=False, trigger="cli", owner="t", now=now,
                                     lease=timedelta(minutes=1))
                runs.finish(conn, run_id=run_id, status=status, now=now,
                            counters=dict.fromkeys(runs.COUNTER_KEYS, 0))
                ids.append(run_id)
        status = httpx.get(f"{s.url}/ops/status", headers=OPS).json()
        engine.dispose()
        last = status["directions"]["upstream"]["last_success"]
        assert last["run_id"] == ids[0] and last["status"] == "succeeded"
