"""Who acted: an operator's name recorded with approvals, rejections, cancels and replays,
from the JSON API (``X-Ops-Actor``), the console's sign-in form and the CLI (``--by``)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine

from receiver.actor import ActorError, from_header, operator_name
from sync_core.store import migrate, queue, runs
from sync_core.store.db import make_engine
from sync_core.store.inbox import NewEvent, insert_new
from sync_core.store.models import utcnow

from .conftest import make_settings
from .helpers import running_receiver
from .test_cli_runs import _run

TOKEN = "ops-test-token"
OPS = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/ops/console"


def _dead_event(engine: Engine, key: str = "zhangsan") -> int:
    """A dead upstream event, as the worker leaves one that failed for good."""
    with engine.begin() as conn:
        insert_new(conn, [NewEvent("wecom", f"d-{key}", "user", key, "update_user",
                                   {"user_id": key}, utcnow() - timedelta(seconds=5))])
        (claim,) = queue.claim(conn, owner="w", now=utcnow(), lease=timedelta(seconds=60),
                               max_entities=1)
        queue.fail(conn, owner="w", ids=claim.ids, now=utcnow(), error="gave up",
                   retry_at=None)
    return claim.ids[0]


def _queued_run(engine: Engine) -> int:
    with engine.begin() as conn:
        return runs.create(conn, direction="upstream", mode="full", source="api",
                           dry_run=False, trigger="ops", owner="elsewhere", now=utcnow(),
                           lease=timedelta(seconds=60))


def _replays(url: str, event_id: int) -> list[str | None]:
    detail = httpx.get(f"{url}/ops/events/{event_id}", headers=OPS).json()
    return [a["actor"] for a in detail["history"] if a["outcome"] == "replayed"]


@pytest.mark.parametrize("raw, name", [
    ("  alice ", "alice"), ("张三", "张三"), ("ops.team+night@corp-1", "ops.team+night@corp-1"),
    ("", None), ("   ", None), (None, None), ("x" * 48, "x" * 48)])
def test_operator_name_accepts(raw: str | None, name: str | None) -> None:
    assert operator_name(raw) == name


@pytest.mark.parametrize("raw", ["x" * 49, "a/b", "<script>", "alice\nbob", "a;b", "tab\there"])
def test_operator_name_refuses(raw: str) -> None:
    with pytest.raises(ActorError):
        operator_name(raw)


def test_header_is_percent_decoded_utf8() -> None:
    assert from_header(quote("李雷")) == "李雷"
    assert from_header("bob") == "bob" and from_header(None) is None
    with pytest.raises(ActorError, match="UTF-8"):
        from_header("%ff")


def test_api_records_the_x_ops_actor_and_refuses_a_bad_one(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    event_id = _dead_event(engine)
    run_id = _queued_run(engine)
    with running_receiver(make_settings(sqlite_url)) as srv:
        for bad in ("a/b", "%ff", quote("x" * 49)):
            reply = httpx.post(f"{srv.url}/ops/events/{event_id}/replay",
                               headers={**OPS, "X-Ops-Actor": bad})
            error = reply.json()["error"]
            assert reply.status_code == 400, bad
            assert "operator name" in error or "UTF-8" in error, error
            refused = httpx.post(f"{srv.url}/ops/runs/{run_id}/cancel",
                                 headers={**OPS, "X-Ops-Actor": bad})
            assert refused.status_code == 400, bad
        assert _replays(srv.url, event_id) == []  # a refused request changed nothing
        run = httpx.get(f"{srv.url}/ops/runs/{run_id}", headers=OPS).json()
        assert run["status"] == "queued" and run["decision"] is None

        reply = httpx.post(f"{srv.url}/ops/events/{event_id}/replay",
                           headers={**OPS, "X-Ops-Actor": quote("张三")})
        assert reply.status_code == 202
        assert httpx.post(f"{srv.url}/ops/events/{event_id}/replay",
                          headers=OPS).status_code == 202
        assert _replays(srv.url, event_id) == ["api:张三", "api"]

        cancelled = httpx.post(f"{srv.url}/ops/runs/{run_id}/cancel",
                               headers={**OPS, "X-Ops-Actor": "night-shift"})
        assert cancelled.status_code == 200
        run = httpx.get(f"{srv.url}/ops/runs/{run_id}", headers=OPS).json()
        assert run["decision"]["by"] == "api:night-shift"
    engine.dispose()


def test_console_records_the_name_given_at_sign_in(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    event_id = _dead_event(engine)
    with running_receiver(make_settings(sqlite_url)) as srv:
        refused = httpx.post(f"{srv.url}{BASE}/login", data={"token": TOKEN, "name": "a<b"})
        assert refused.status_code == 400 and "set-cookie" not in refused.headers
        assert "operator name" in refused.text

        with contextlib.closing(httpx.Client(base_url=srv.url)) as client:
            signed = client.post(f"{BASE}/login", data={"token": TOKEN, "name": " 李雷 "})
            assert signed.status_code == 303
            page = client.get(f"{BASE}/events/{event_id}")
            assert page.status_code == 200 and "李雷" in page.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf
            done = client.post(f"{BASE}/events/{event_id}/replay",
                               data={"csrf": csrf.group(1)})
            assert done.status_code == 303
        with contextlib.closing(httpx.Client(base_url=srv.url)) as anonymous:
            anonymous.post(f"{BASE}/login", data={"token": TOKEN})
            page = anonymous.get(f"{BASE}/events/{event_id}")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf
            anonymous.post(f"{BASE}/events/{event_id}/replay", data={"csrf": csrf.group(1)})
        assert _replays(srv.url, event_id) == ["console:李雷", "console"]
    engine.dispose()


def test_cli_by_is_recorded_and_a_bad_name_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {"WECOM_SYNC_DATABASE_URL": url}
    engine = make_engine(url)
    migrate.upgrade(engine)
    event_id = _dead_event(engine)
    run_id = _queued_run(engine)
    engine.dispose()

    bad = _run(["cancel", str(run_id), "--by", "a/b"], env, tmp_path)
    assert bad.returncode == 1 and "operator name" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = _run(["replay", str(event_id), "--by", "x" * 49], env, tmp_path)
    assert bad.returncode == 1 and "longer than 48" in bad.stderr
    shown = json.loads(_run(["events", str(event_id), "--json"], env, tmp_path).stdout)
    assert shown["status"] == "dead" and [a["outcome"] for a in shown["history"]] == ["dead"]

    replayed = _run(["replay", str(event_id), "--by", "王五", "--json"], env, tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    event = json.loads(replayed.stdout)
    assert event["status"] == "pending"
    assert [(a["outcome"], a["actor"]) for a in event["history"]] == [
        ("dead", None), ("replayed", "cli:王五")]
    plain = _run(["replay", str(event_id)], env, tmp_path)
    assert plain.returncode == 0 and "replayed by cli" in plain.stdout
    assert _run(["replay", "9999"], env, tmp_path).returncode == 1

    cancelled = _run(["cancel", str(run_id), "--by", "王五", "--json"], env, tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["decision"]["by"] == "cli:王五"

