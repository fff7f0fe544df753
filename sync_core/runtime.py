"""Wiring for the sync side of a process: clients, planner policy, upstream sync, worker."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from .mapping import MappingPolicy, UsernameSource
from .metrics import Metrics
from .planner import Mode, Policy
from .reconciler import Reconciler, RequestError, RunRequest
from .scheduler import Scheduler
from .settings import Settings
from .store.renames import RenameLedger
from .store.runs import RunConflict
from .upstream_sync import ReadCooldown, UpstreamSync
from .upstreams import Upstreams, build_upstreams
from .worker import Worker

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> Policy:
    return Policy.from_settings(
        settings, adopt_existing=settings.adopt_existing,
        mapping=MappingPolicy(username_source=UsernameSource(settings.username_source)))


@dataclass
class SyncRuntime:
    upstreams: Upstreams
    sync: UpstreamSync
    worker: Worker
    reconciler: Reconciler
    scheduler: Scheduler

    async def work(self, stop: asyncio.Event) -> None:
        """The worker and the scheduler until ``stop`` is set, then the runs this process
        started have ended (``reconciler.interrupt`` ends them at once).

        The scheduler runs wherever the worker runs (``serve``, ``worker``; not ``serve
        --no-worker``): in every layout that applies events, each such process takes part
        in the election and exactly one, the lease holder, fires the schedules."""
        try:
            await asyncio.gather(self.worker.run(stop), self.scheduler.run(stop))
        finally:
            await self.reconciler.wait()

    async def aclose(self) -> None:
        await self.upstreams.aclose()


def build_runtime(settings: Settings, engine: Engine, metrics: Metrics, *,
                  wake: asyncio.Event | None = None, dry_run: bool = False,
                  need_wecom: bool = True) -> SyncRuntime:
    """Raises SettingsError naming the first missing credential (``need_wecom``: see
    ``build_upstreams``)."""
    upstreams = build_upstreams(settings, observer=metrics.observe_call, dry_run=dry_run,
                                need_wecom=need_wecom)
    sync = UpstreamSync(
        upstreams.wecom, upstreams.authing, policy_from(settings),
        cooldown=ReadCooldown(settings.restricted_cooldown_seconds),
        on_event_fields=lambda kind: metrics.event_field_fallbacks.labels(kind).inc(),
        renames=RenameLedger(engine))
    reconciler = Reconciler(settings, engine, sync)

    async def on_batch_job(payload: dict[str, Any]) -> str:
        """A batch import rewrote WeCom behind the callbacks' back: reconcile. A full
        replace may have removed people, so it reconciles in full (the deletion guard
        still applies); an incremental import only creates and updates."""
        job_type, job_id = payload.get("job_type"), payload.get("job_id")
        mode = Mode.CREATE_UPDATE if job_type == "sync_user" else Mode.FULL
        try:
            run_id = await reconciler.start(RunRequest(mode=mode, trigger="batch_job"))
        except RunConflict as exc:
            return f"{job_type} job {job_id}: reconcile run {exc.run_id} already active"
        return f"{job_type} job {job_id}: started reconcile run {run_id} ({mode})"

    async def scheduled(direction: str, trigger: str) -> int | None:
        try:
            return await reconciler.start(RunRequest(direction=direction, trigger=trigger))
        except RequestError as exc:  # e.g. a direction this version cannot reconcile
            log.warning("scheduled %s reconcile skipped: %s", direction, exc)
            return None

    worker = Worker(settings, engine, sync, metrics, wake=wake, on_batch_job=on_batch_job)
    scheduler = Scheduler(settings, engine, scheduled)
    return SyncRuntime(upstreams, sync, worker, reconciler, scheduler)
