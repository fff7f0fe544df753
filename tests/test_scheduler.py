"""The reconcile scheduler: when a schedule is due, leader election, crash recovery."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sync_core.engine.scheduler import Scheduler, due, previous_fire, scheduled_directions
from sync_core.store import leases, migrate, runs
from sync_core.store.db import make_engine
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parent.parent
DAILY = "0 6 * * *"
EVERY_OTHER_DAY = "0 3 */2 * *"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- pure helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("cron", "now", "expected"), [
    (DAILY, "2024-05-02T06:00:30", "2024-05-02T06:00:00"),
    (DAILY, "2024-05-02T06:00:00", "2024-05-02T06:00:00"),  # a fire time counts at once
    (DAILY, "2024-05-02T05:59:59.999", "2024-05-01T06:00:00"),
    (EVERY_OTHER_DAY, "2024-05-02T12:00:00", "2024-05-01T03:00:00"),
    (EVERY_OTHER_DAY, "2024-05-03T03:00:01", "2024-05-03T03:00:00"),
    ("*/15 * * * *", "2024-05-02T10:44:59", "2024-05-02T10:30:00"),
])
def test_previous_fire(cron: str, now: str, expected: str) -> None:
    assert previous_fire(cron, at(now)) == at(expected)


def test_previous_fire_reads_the_cron_in_the_time_zone_of_now() -> None:
    shanghai = timezone(timedelta(hours=8))
    # 20:00 UTC on May 1 is 04:00 on May 2 in Shanghai: 03:00 local fired an hour ago.
    fire = previous_fire(EVERY_OTHER_DAY, at("2024-05-01T20:00:00").astimezone(shanghai))
    assert fire == datetime(2024, 5, 1, 3, 0, tzinfo=shanghai)  # */2: May 2 has none
    # 23:00 UTC is 07:00 local: today's 06:00 local counts, though 06:00 UTC is 17 h off.
    fire = previous_fire(DAILY, at("2024-05-01T23:00:00").astimezone(shanghai))
    assert fire == datetime(2024, 5, 2, 6, 0, tzinfo=shanghai)


@pytest.mark.parametrize(("cron", "last", "now", "expected"), [
    # no history: never due (a fresh install waits for its first fire time)
    (DAILY, None, "2024-05-02T06:00:30", False),
    # the last run started after the latest fire time: done
    (DAILY, "2024-05-02T06:00:05", "2024-05-02T12:00:00", False),
    # a fire time passed since the last run: due
    (DAILY, "2024-05-01T06:00:05", "2024-05-02T06:00:10", True),
    (DAILY, "2024-05-01T06:00:05", "2024-05-02T06:00:00", True),
    # not yet
    (DAILY, "2024-05-01T06:00:05", "2024-05-02T05:59:59", False),
    # a run that started exactly at the fire time covers it
    (DAILY, "2024-05-02T06:00:00", "2024-05-02T06:00:30", False),
    # three missed firings: due (the caller starts one run, which covers them all)
    (DAILY, "2024-04-28T06:00:05", "2024-05-02T07:00:00", True),
    # every other day: the even day has no fire time
    (EVERY_OTHER_DAY, "2024-05-01T03:00:07", "2024-05-02T23:59:00", False),
    (EVERY_OTHER_DAY, "2024-05-01T03:00:07", "2024-05-03T03:00:00", True),
    # clock skew: a last run "in the future" is not due
    (DAILY, "2024-05-03T00:00:00", "2024-05-02T07:00:00", False),
])
def test_due(cron: str, last: str | None, now: str, expected: bool) -> None:
    assert due(cron, at(last) if last else None, at(now)) is expected


@pytest.mark.parametrize(("direction", "up", "down", "expected"), [
    ("upstream", DAILY, DAILY, {"upstream"}),
    ("downstream", DAILY, DAILY, {"downstream"}),
    ("both", DAILY, DAILY, {"upstream", "downstream"}),
    ("both", "", DAILY, {"downstream"}),  # empty disables
    ("both", DAILY, "  ", {"upstream"}),
    ("upstream", "", DAILY, set()),
])
def test_scheduled_directions(direction: str, up: str, down: str,
                              expected: set[str]) -> None:
    settings = make_settings("sqlite://", direction=direction, upstream_reconcile_cron=up,
                             downstream_reconcile_cron=down)
    assert set(scheduled_directions(settings)) == expected


def test_a_lease_shorter_than_a_tick_is_refused() -> None:
    with pytest.raises(ValueError, match="lease_ttl"):
        Scheduler(make_settings("sqlite://"), make_engine("sqlite://"), _never,
                  tick_seconds=30, lease_ttl=30)


# -- one process, injected clock, both databases --------------------------------------------

@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Starter:
    """A ``start_run`` that creates a real run row, so the runs table records the start
    (and refuses a second active run of a direction with ``RunConflict``)."""

    engine: Engine
    clock: Clock
    started: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, direction: str, trigger: str) -> int:
        run_id = await asyncio.to_thread(
            _create_run, self.engine, direction, trigger, self.clock(), "starter")
        self.started.append((direction, trigger))
        return run_id


async def _never(direction: str, trigger: str) -> int:
    raise AssertionError(f"nothing should start ({direction}, {trigger})")


def _create_run(engine: Engine, direction: str, trigger: str, now: datetime, owner: str,
                lease: timedelta = timedelta(minutes=10), finished: bool = False) -> int:
    with engine.begin() as conn:
        run_id = runs.create(conn, direction=direction, mode="create_update", source="api",
                             dry_run=False, trigger=trigger, owner=owner, now=now,
                             lease=lease)
        runs.start(conn, run_id=run_id, now=now)
        if finished:
            runs.finish(conn, run_id=run_id, status="succeeded", counters={}, now=now)
    return run_id


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def _scheduler(engine: Engine, clock: Clock, start_run: object, owner: str = "a",
               **settings: str) -> Scheduler:
    values = {"direction": "upstream", "upstream_reconcile_cron": DAILY,
              "downstream_reconcile_cron": DAILY, **settings}
    return Scheduler(make_settings("sqlite://", None, **values), engine,
                     start_run,  # type: ignore[arg-type]
                     owner=owner, clock=clock, tz=UTC)


async def test_no_history_waits_for_the_next_fire_time(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T10:00:00"))  # today's 06:00 already passed
    starter = Starter(engine, clock)
    scheduler = _scheduler(engine, clock, starter)
    assert await scheduler.tick() == []
    assert scheduler.is_leader
    clock.advance(hours=19, minutes=59)  # 05:59 tomorrow
    assert await scheduler.tick() == []
    clock.advance(minutes=1, seconds=5)
    [(direction, run_id)] = await scheduler.tick()
    assert (direction, starter.started) == ("upstream", [("upstream", "schedule")])
    clock.advance(seconds=15)
    assert await scheduler.tick() == []


async def test_a_missed_firing_runs_once_after_startup(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T10:00:00"))
    # The last scheduled run was four days ago: three firings were missed while down.
    _create_run(engine, "upstream", "schedule", at("2024-04-28T06:00:04"), "old",
                finished=True)
    starter = Starter(engine, clock)
    scheduler = _scheduler(engine, clock, starter)
    started = await scheduler.tick()
    assert [d for d, _ in started] == ["upstream"]
    for _ in range(3):
        clock.advance(seconds=15)
        assert await scheduler.tick() == []
    assert len(starter.started) == 1


@pytest.mark.parametrize(("direction", "up", "down", "expected"), [
    ("upstream", DAILY, DAILY, ["upstream"]),
    ("downstream", DAILY, DAILY, ["downstream"]),
    ("both", DAILY, DAILY, ["upstream", "downstream"]),
    ("both", "", DAILY, ["downstream"]),
])
async def test_settings_choose_the_directions_that_fire(
        engine: Engine, direction: str, up: str, down: str, expected: list[str]) -> None:
    clock = Clock(at("2024-05-02T10:00:00"))
    for name in ("upstream", "downstream"):
        _create_run(engine, name, "schedule", at("2024-05-01T06:00:03"), "old",
                    finished=True)
    starter = Starter(engine, clock)
    scheduler = _scheduler(engine, clock, starter, direction=direction,
                           upstream_reconcile_cron=up, downstream_reconcile_cron=down)
    assert [d for d, _ in await scheduler.tick()] == expected


async def test_an_active_run_skips_the_firing_without_retrying_it(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T06:00:02"))
    _create_run(engine, "upstream", "schedule", at("2024-05-01T06:00:03"), "old",
                finished=True)
    manual = _create_run(engine, "upstream", "ops", at("2024-05-02T05:50:00"), "ops",
                         lease=timedelta(hours=1))
    calls: list[str] = []

    async def start_run(direction: str, trigger: str) -> int:
        calls.append(direction)
        with engine.begin() as conn:  # the real creator's refusal
            return runs.create(conn, direction=direction, mode="create_update",
                               source="api", dry_run=False, trigger=trigger, owner="x",
                               now=clock(), lease=timedelta(minutes=10))

    scheduler = _scheduler(engine, clock, start_run)
    assert await scheduler.tick() == []
    assert calls == ["upstream"]
    clock.advance(seconds=15)
    assert await scheduler.tick() == []  # the same firing is not tried on every tick
    assert calls == ["upstream"]
    with engine.begin() as conn:
        runs.finish(conn, run_id=manual, status="succeeded", counters={}, now=clock())
    clock.advance(days=1)  # the next firing starts normally
    assert [d for d, _ in await scheduler.tick()] == ["upstream"]


async def test_start_run_returning_none_counts_as_fired(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T06:00:02"))
    _create_run(engine, "upstream", "schedule", at("2024-05-01T06:00:03"), "old",
                finished=True)
    calls: list[str] = []

    async def start_run(direction: str, trigger: str) -> None:
        calls.append(direction)

    scheduler = _scheduler(engine, clock, start_run)
    assert await scheduler.tick() == []
    clock.advance(seconds=15)
    assert await scheduler.tick() == []
    assert calls == ["upstream"]


async def test_a_failing_start_is_retried_on_the_next_tick(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T06:00:02"))
    _create_run(engine, "upstream", "schedule", at("2024-05-01T06:00:03"), "old",
                finished=True)
    starter = Starter(engine, clock)
    failures = [OSError("database went away")]

    async def start_run(direction: str, trigger: str) -> int:
        if failures:
            raise failures.pop()
        return await starter(direction, trigger)

    scheduler = _scheduler(engine, clock, start_run)
    assert await scheduler.tick() == []
    clock.advance(seconds=15)
    assert [d for d, _ in await scheduler.tick()] == ["upstream"]


async def test_one_leader_and_takeover_after_the_ttl(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T06:00:01"))
    _create_run(engine, "upstream", "schedule", at("2024-05-01T06:00:03"), "old",
                finished=True)
    starter = Starter(engine, clock)
    a = _scheduler(engine, clock, starter, owner="a")
    b = _scheduler(engine, clock, starter, owner="b")
    assert [d for d, _ in await a.tick()] == ["upstream"]
    assert await b.tick() == []
    assert (a.is_leader, b.is_leader) == (True, False)
    for _ in range(6):  # a keeps renewing: b never leads
        clock.advance(seconds=15)
        await a.tick()
        await b.tick()
        assert (a.is_leader, b.is_leader) == (True, False)
    clock.advance(seconds=59)  # a stopped renewing, but its lease still holds
    await b.tick()
    assert not b.is_leader
    clock.advance(seconds=2)
    await b.tick()
    assert b.is_leader
    await a.tick()
    assert not a.is_leader
    with engine.begin() as conn:
        assert leases.holder(conn, name="scheduler", now=clock()) == "b"
    # The new leader reads the runs table: today's firing already ran under a.
    assert starter.started == [("upstream", "schedule")]


async def test_stop_hands_the_lease_over_at_once(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T10:00:00"))
    a = _scheduler(engine, clock, _never, owner="a")
    b = _scheduler(engine, clock, _never, owner="b")
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    for _ in range(100):
        if a.is_leader:
            break
        await asyncio.sleep(0.02)
    assert a.is_leader
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert not a.is_leader
    clock.advance(seconds=1)
    await b.tick()
    assert b.is_leader


async def test_runs_of_a_dead_process_are_failed_and_live_ones_kept(engine: Engine) -> None:
    clock = Clock(at("2024-05-02T10:00:00"))
    dead = _create_run(engine, "upstream", "ops", clock(), "gone",
                       lease=timedelta(seconds=30))
    live = _create_run(engine, "downstream", "ops", clock(), "alive",
                       lease=timedelta(minutes=10))
    follower = _scheduler(engine, clock, _never, owner="follower")
    leader = _scheduler(engine, clock, _never, owner="leader")
    with engine.begin() as conn:
        leases.acquire(conn, name="scheduler", owner="leader", now=clock(),
                       ttl=timedelta(hours=1))
    clock.advance(seconds=31)
    assert await follower.tick() == []  # every process sweeps, leader or not
    assert not follower.is_leader
    with engine.begin() as conn:
        gone, alive = runs.get(conn, dead), runs.get(conn, live)
    assert gone is not None and alive is not None
    assert gone["status"] == "failed"
    assert gone["error"] == "the process running it stopped (lease expired)"
    assert alive["status"] == "running" and alive["error"] is None
    await leader.tick()  # idempotent
    with engine.begin() as conn:
        assert runs.get(conn, dead)["status"] == "failed"  # type: ignore[index]


# -- two OS processes on one PostgreSQL -------------------------------------------------------

_CHILD = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from sync_core.engine.scheduler import Scheduler
from sync_core.settings import Settings
from sync_core.store import runs
from sync_core.store.db import make_engine

url, owner = sys.argv[1], sys.argv[2]
engine = make_engine(url, pool_size=2)
last = [datetime.now(UTC)]

def clock():
    last[0] = datetime.now(UTC)
    return last[0]

def create(direction, trigger):
    with engine.begin() as conn:
        run_id = runs.create(conn, direction=direction, mode="create_update", source="api",
                             dry_run=False, trigger=trigger, owner=owner, now=clock(),
                             lease=timedelta(minutes=5))
        runs.start(conn, run_id=run_id, now=clock())
        runs.finish(conn, run_id=run_id, status="succeeded", counters={}, now=clock())
    return run_id

async def start_run(direction, trigger):
    run_id = await asyncio.to_thread(create, direction, trigger)
    print("start", owner, direction, run_id, flush=True)
    return run_id

async def main():
    settings = Settings(_env_file=None, database_url=url, direction="upstream",
                        upstream_reconcile_cron="0 0 1 1 *")
    scheduler = Scheduler(settings, engine, start_run, owner=owner, clock=clock,
                          tick_seconds=0.1, lease_ttl=float(sys.argv[3]), tz=UTC)
    print("ready", owner, flush=True)
    while True:
        await scheduler.tick()
        print("tick", owner, last[0].timestamp(), int(scheduler.is_leader), flush=True)
        await asyncio.sleep(0.1)

asyncio.run(main())
"""


class Child:
    """A scheduler in its own OS process; its stdout lines are collected by a thread."""

    def __init__(self, url: str, owner: str, ttl: float) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.owner = owner
        # stderr goes to a file: a full pipe nobody reads would freeze the child.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, owner, str(ttl)], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines: list[list[str]] = []
        self.errors = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def ticks(self) -> list[tuple[float, bool]]:
        return [(float(t), lead == "1") for kind, _, t, lead in
                (x for x in list(self.lines) if x[0] == "tick")]

    def starts(self) -> list[list[str]]:
        return [x for x in list(self.lines) if x[0] == "start"]

    def kill(self) -> str:
        """SIGKILL (a crash: nothing is released); returns what the child wrote to stderr."""
        if not self.stderr.closed:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            self._reader.join(timeout=5)
            self.stderr.seek(0)
            self.errors = self.stderr.read()
            self.stderr.close()
        return self.errors


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_two_processes_elect_one_leader_and_the_survivor_takes_over(pg_url: str) -> None:
    ttl = 1.5
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        # Last year's firing of "0 0 1 1 *" was missed: exactly one run is due now.
        _create_run(engine, "upstream", "schedule",
                    datetime.now(UTC) - timedelta(days=400), "old", finished=True)
    finally:
        engine.dispose()
    children = [Child(pg_url, "p1", ttl), Child(pg_url, "p2", ttl)]
    try:
        _wait_for(lambda: all(len(c.ticks()) >= 15 for c in children), 20,
                  "both processes to tick")
        leaders = [c for c in children if any(lead for _, lead in c.ticks())]
        assert len(leaders) == 1, [c.ticks() for c in children]
        leader = leaders[0]
        [survivor] = [c for c in children if c is not leader]
        assert [s[1:3] for s in leader.starts() + survivor.starts()] == \
            [[leader.owner, "upstream"]]

        leader.kill()
        last_renewal = max(t for t, lead in leader.ticks() if lead)
        _wait_for(lambda: any(lead for _, lead in survivor.ticks()), ttl + 5,
                  "the survivor to take over")
        takeover = min(t for t, lead in survivor.ticks() if lead)
        assert takeover > last_renewal + ttl  # only once the dead leader's lease expired
        assert all(t > last_renewal for t, lead in survivor.ticks() if lead)
        # The new leader knows from the runs table that this firing already ran.
        time.sleep(0.5)
        assert survivor.starts() == []
    finally:
        errors = [c.kill() for c in children]
    assert not any("Traceback" in e for e in errors), errors
