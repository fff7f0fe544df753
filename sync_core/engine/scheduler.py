"""The reconcile scheduler: fires the configured cron schedules on one leader at a time.

Every process that runs the worker (``serve``, ``worker``; see ``SyncRuntime.work``) runs a
``Scheduler``, so every layout that applies events has candidates; a lease row (``leases``,
name ``scheduler``) elects the one that fires. Each tick:

1. fails runs left ``running`` under an expired lease (a crashed process must not block
   its direction forever); idempotent, so every process does it;
2. takes or renews the lease; a leader that stops renewing (crash, freeze, lost database)
   loses it after ``lease_ttl`` and another process takes over;
3. on the leader only, starts each scheduled direction that is due.

"Due" is derived from the runs table alone (the newest run with trigger ``schedule``), so a
new leader knows what the old one did and nothing else is stored. A firing missed while no
process was up is caught up once, on the first tick after startup; several missed firings
still give one run. With no scheduled run in the history, nothing fires at startup: the
first run waits for the first fire time after the scheduler started.

Cron expressions are read in the scheduler's time zone (by default the process's local
zone, as cron(8) does: set ``TZ`` in the container), so ``0 3 * * *`` means 03:00 where
the operators are, not 03:00 UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo

from croniter import croniter
from sqlalchemy import Engine

from sync_core.directory.vocabulary import Direction
from sync_core.settings import DirectionSetting, Settings
from sync_core.store import leases, runs
from sync_core.store.models import utcnow

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
TRIGGER = "schedule"

StartRun = Callable[[str, str], Awaitable[int | None]]


# -- pure helpers -------------------------------------------------------------------------

def previous_fire(cron: str, now: datetime) -> datetime:
    """The latest fire time at or before ``now``, in ``now``'s time zone.

    ``previous_fire("0 6 * * *", 2024-05-02T06:00:30Z) == 2024-05-02T06:00Z``; at
    05:59:59 it is the day before. Fire times are whole minutes, so starting the search
    from the next minute boundary counts a fire time equal to ``now``.
    """
    base = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fire: datetime = croniter(cron, base).get_prev(datetime)
    return fire


def next_fire(cron: str, now: datetime) -> datetime:
    """The first fire time strictly after ``now``, in ``now``'s time zone.

    ``next_fire("0 6 * * *", 2024-05-02T06:00Z) == 2024-05-03T06:00Z``.
    """
    fire: datetime = croniter(cron, now).get_next(datetime)
    return fire


def due(cron: str, last: datetime | None, now: datetime) -> bool:
    """Whether a fire time of ``cron`` fell after ``last`` and at or before ``now``.

    Any number of fire times in that window counts once: the caller starts one run and its
    start becomes the new ``last``. ``last=None`` (no history) is never due, so a fresh
    install does not start a full reconcile the moment it boots; the scheduler passes its
    own start time instead, which makes the first fire time after startup due.
    """
    if last is None:
        return False
    return last < previous_fire(cron, now)


def scheduled_directions(settings: Settings) -> dict[str, str]:
    """Direction → cron for every direction this service syncs that has a schedule."""
    wanted = {
        Direction.UPSTREAM.value: (DirectionSetting.UPSTREAM, DirectionSetting.BOTH),
        Direction.DOWNSTREAM.value: (DirectionSetting.DOWNSTREAM, DirectionSetting.BOTH),
    }
    crons = {
        Direction.UPSTREAM.value: settings.upstream_reconcile_cron.strip(),
        Direction.DOWNSTREAM.value: settings.downstream_reconcile_cron.strip(),
    }
    return {name: crons[name] for name, modes in wanted.items()
            if settings.direction in modes and crons[name]}


# -- the loop -----------------------------------------------------------------------------

class Scheduler:
    """One per process; only the lease holder fires. See the module docstring."""

    def __init__(self, settings: Settings, engine: Engine, start_run: StartRun, *,
                 owner: str | None = None, clock: Callable[[], datetime] = utcnow,
                 tick_seconds: float = 15.0, lease_ttl: float = 60.0,
                 tz: tzinfo | None = None) -> None:
        if lease_ttl <= tick_seconds:
            raise ValueError(f"lease_ttl ({lease_ttl}) must exceed tick_seconds "
                             f"({tick_seconds}), or the leader loses its lease between ticks")
        self.engine = engine
        self.owner = (owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}")[:128]
        self.schedules = scheduled_directions(settings)
        self.tick_seconds = tick_seconds
        self._start_run = start_run
        self._clock = clock
        self._ttl = timedelta(seconds=lease_ttl)
        self._tz = tz
        self._leader = False
        self._since: datetime | None = None
        # The fire time each direction last tried without starting a run (another run was
        # active, or the creator declined): that firing is skipped, not retried on every
        # tick. Memory only: a new leader may try it once more, which is harmless.
        self._skipped: dict[str, datetime] = {}

    @property
    def is_leader(self) -> bool:
        """Whether the last tick held the lease (it may have expired since)."""
        return self._leader

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set, then hand the lease over at once."""
        if not self.schedules:
            log.info("scheduler: no reconcile schedule configured")
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # noqa: BLE001 - a database blip must not end the loop
                    self._leader = False
                    log.exception("scheduler tick failed; retrying in %.0f s",
                                  self.tick_seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.tick_seconds)
        finally:
            await self._resign()

    async def tick(self) -> list[tuple[str, int]]:
        """One step: sweep stale runs, take or renew the lease, fire what is due.

        Returns ``(direction, run_id)`` for every run it started.
        """
        now = self._clock()
        if self._since is None:
            self._since = now
        swept = await asyncio.to_thread(self._sweep, now)
        if swept:
            log.warning("scheduler: runs %s failed: their process stopped (lease expired)",
                        swept)
        leader = await asyncio.to_thread(self._acquire, now)
        if leader != self._leader:
            log.info("scheduler: %s %s the lease", self.owner,
                     "took" if leader else "lost")
        self._leader = leader
        if not leader:
            return []
        started: list[tuple[str, int]] = []
        for direction, cron in self.schedules.items():
            run_id = await self._fire_if_due(direction, cron, now)
            if run_id is not None:
                started.append((direction, run_id))
        return started

    async def _fire_if_due(self, direction: str, cron: str, now: datetime) -> int | None:
        history = await asyncio.to_thread(self._last_started, direction)
        local_now = now.astimezone(self._tz)
        candidates = (history or self._since, self._skipped.get(direction))
        last = max(c for c in candidates if c is not None)
        if not due(cron, last, local_now):
            return None
        fire = previous_fire(cron, local_now)
        try:
            run_id = await self._start_run(direction, TRIGGER)
        except runs.RunConflict as exc:
            self._skipped[direction] = fire
            log.info("scheduler: %s firing of %s skipped: run %d is still active",
                     direction, fire.isoformat(), exc.run_id)
            return None
        except Exception:  # noqa: BLE001 - e.g. the database is down: try again next tick
            log.exception("scheduler: could not start the %s run; retrying next tick",
                          direction)
            return None
        if run_id is None:
            self._skipped[direction] = fire
            log.info("scheduler: %s firing of %s started nothing", direction,
                     fire.isoformat())
            return None
        log.info("scheduler: started %s run %d (fire time %s)", direction, run_id,
                 fire.isoformat())
        return run_id

    async def _resign(self) -> None:
        if not self._leader:
            return
        self._leader = False
        try:
            await asyncio.to_thread(self._release, self._clock())
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.exception("scheduler: could not release the lease; it expires in %s",
                          self._ttl)

    # -- database steps (run in a thread, one transaction each) -----------------------

    def _sweep(self, now: datetime) -> list[int]:
        with self.engine.begin() as conn:
            return runs.sweep_stale(conn, now=now)

    def _acquire(self, now: datetime) -> bool:
        with self.engine.begin() as conn:
            return leases.acquire(conn, name=LEASE_NAME, owner=self.owner, now=now,
                                  ttl=self._ttl)

    def _release(self, now: datetime) -> None:
        with self.engine.begin() as conn:
            leases.release(conn, name=LEASE_NAME, owner=self.owner, now=now)

    def _last_started(self, direction: str) -> datetime | None:
        with self.engine.begin() as conn:
            return runs.last_started(conn, direction=direction, trigger=TRIGGER)
