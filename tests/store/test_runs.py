"""Run decisions (approve, reject, cancel) are each one conditional update: of concurrent
decisions on one run exactly one finds the state it needs, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from sync_core.store import runs
from sync_core.store.models import RunStatus, utcnow

LEASE = timedelta(minutes=1)


def _blocked(engine: Engine) -> int:
    now = utcnow()
    with engine.begin() as conn:
        run_id = runs.create(conn, direction="upstream", mode="full", source="api",
                             dry_run=False, trigger="ops", owner="p1", now=now, lease=LEASE)
        runs.add_items(conn, run_id=run_id, first_seq=0, items=[
            {"kind": "user", "key": "a", "action": "delete", "status": "staged",
             "changes": [], "error": None}])
        runs.finish(conn, run_id=run_id, status=RunStatus.BLOCKED.value, counters={},
                    now=now)
    return run_id


def _done(engine: Engine, run_id: int) -> None:
    """The approved run's apply ends (another run of its direction may then start)."""
    with engine.begin() as conn:
        runs.finish(conn, run_id=run_id, status=RunStatus.SUCCEEDED.value, counters={},
                    now=utcnow())


def _approve(engine: Engine, run_id: int, who: str) -> Any:
    now = utcnow()
    with engine.begin() as conn:
        return runs.approve(conn, run_id=run_id, actor=who, owner=who, now=now,
                            until=now + LEASE)


def _reject(engine: Engine, run_id: int, who: str) -> Any:
    with engine.begin() as conn:
        return runs.reject(conn, run_id=run_id, actor=who, now=utcnow())


def _cancel(engine: Engine, run_id: int, who: str) -> Any:
    with engine.begin() as conn:
        return runs.cancel(conn, run_id=run_id, actor=who, now=utcnow())


def test_a_decided_run_takes_no_second_decision(engine: Engine) -> None:
    approved = _blocked(engine)
    run = _approve(engine, approved, "alice")
    assert run["status"] == RunStatus.RUNNING.value and run["decided_by"] == "alice"
    assert run["lease_owner"] == "alice"
    for decide in (_approve, _reject):
        with pytest.raises(runs.DecisionError, match="running, not blocked"):
            decide(engine, approved, "bob")
    _done(engine, approved)
    rejected = _blocked(engine)
    assert _reject(engine, rejected, "alice")["status"] == RunStatus.SUCCEEDED.value
    with pytest.raises(runs.DecisionError, match="not blocked"):
        _approve(engine, rejected, "bob")
    with pytest.raises(runs.DecisionError, match="not queued or running"):
        _cancel(engine, rejected, "bob")
    with pytest.raises(LookupError):
        _approve(engine, 999, "bob")
    with engine.connect() as conn:
        assert runs.get(conn, rejected)["decided_by"] == "alice"  # type: ignore[index]
        assert [i["status"] for i in runs.items(conn, rejected)] == ["skipped"]
        assert [i["status"] for i in runs.items(conn, approved)] == ["staged"]


@pytest.mark.parametrize("rivals", [
    (_approve,) * 6, (_approve, _reject) * 3, (_reject,) * 6,
])
def _race(engine: Engine, run_id: int,
          rivals: tuple[Callable[[Engine, int, str], Any], ...]) -> tuple[list[str], int]:
    """Every rival decides at once; returns who won and how many were refused."""
    start = threading.Barrier(len(rivals))
    won: list[str] = []
    lost: list[Exception] = []

    def decide(step: Callable[[Engine, int, str], Any], who: str) -> None:
        start.wait()
        try:
            step(engine, run_id, who)
            won.append(who)
        except runs.DecisionError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=decide, args=(step, f"op{i}"))
               for i, step in enumerate(rivals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, len(lost)


@pytest.mark.parametrize("rivals", [
    (_approve,) * 6, (_approve, _reject) * 3, (_reject,) * 6,
])
def test_concurrent_decisions_on_a_blocked_run_have_one_winner(
        engine: Engine, rivals: tuple[Callable[[Engine, int, str], Any], ...]) -> None:
    for _ in range(3):  # a race: several rounds, each must hold
        run_id = _blocked(engine)
        won, refused = _race(engine, run_id, rivals)
        assert len(won) == 1 and refused == len(rivals) - 1, (won, refused)
        with engine.connect() as conn:
            assert runs.get(conn, run_id)["decided_by"] == won[0]  # type: ignore[index]
        _done(engine, run_id)
