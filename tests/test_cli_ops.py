"""``wecom-sync approve|reject|cancel RUN``, ``wecom-sync events [ID]``, ``--version``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sync_core.store import migrate, queue, runs
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow
from sync_core.version import version

from .test_cli_runs import _run, users_left_wecom


def test_version(tmp_path: Path) -> None:
    result = _run(["--version"], {}, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"wecom-sync {version()}"


def test_events_and_run_decisions_from_the_shell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {"WECOM_SYNC_DATABASE_URL": url}
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow() - timedelta(seconds=5)
    with engine.begin() as conn:
        insert_new(conn, [NewEvent("wecom", "d1", "user", "zhangsan", "update_user",
                                   {"user_id": "zhangsan", "name": "张三"}, now)])
        (claim,) = queue.claim(conn, owner="w", now=utcnow(), lease=timedelta(seconds=60),
                               max_entities=1)
        queue.fail(conn, owner="w", ids=claim.ids, now=utcnow(), error="gave up: 张三",
                   retry_at=None)
        queue.replay(conn, event_id=claim.ids[0], now=utcnow(), actor="api")
        queued = runs.create(conn, direction="upstream", mode="full", source="api",
                             dry_run=False, trigger="ops", owner="elsewhere", now=utcnow(),
                             lease=timedelta(seconds=60))
    engine.dispose()

    listed = _run(["events", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [e["entity_key"] for e in json.loads(listed.stdout)["events"]] == ["zhangsan"]
    one = _run(["events", str(claim.ids[0])], env, tmp_path)
    assert one.returncode == 0 and "dead" in one.stdout and "replayed by api" in one.stdout
    assert "gave up: 张三" in one.stdout
    assert _run(["events", "99"], env, tmp_path).returncode == 1

    cancelled = _run(["cancel", str(queued), "--json"], env, tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    run = json.loads(cancelled.stdout)
    assert run["status"] == "failed" and run["decision"]["by"] == "cli"
    again = _run(["cancel", str(queued)], env, tmp_path)
    assert again.returncode == 1 and "not queued or running" in again.stderr
    assert _run(["reject", str(queued)], env, tmp_path).returncode == 1
    assert _run(["reject", "42"], env, tmp_path).returncode == 1


def test_approve_applies_a_blocked_run(tmp_path: Path) -> None:
    with users_left_wecom(tmp_path, users=8, lost=2, threshold=1) as (env, gone, authing):
        blocked = _run(["reconcile", "--mode", "full", "--json"], env, tmp_path)
        assert blocked.returncode == 3, blocked.stderr
        run_id = json.loads(blocked.stdout)["id"]
        approved = _run(["approve", str(run_id), "--json"], env, tmp_path)
        assert approved.returncode == 0, approved.stderr
        run = json.loads(approved.stdout)
        assert run["status"] == "succeeded" and run["decision"]["decision"] == "approved"
        assert all(authing.admin.get_user(u, "external_id")["status"] == "Resigned"
                   for u in gone)
        assert _run(["approve", str(run_id)], env, tmp_path).returncode == 1
        assert "s3cret" not in approved.stdout + approved.stderr
