"""Wiring (the composition root): remotes, the upstream direction's ports under its binding,
entity sync, worker, reconciler and scheduler. The only module that names both the engine
and the platforms; a new direction or platform is wired here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from sync_core.authing.target import AuthingTarget
from sync_core.authing.upstream import UpstreamPlanner
from sync_core.authing.upstream_sync import UpstreamSync
from sync_core.authing.writer import AuthingWriter
from sync_core.binding import Binding
from sync_core.directory.operations import Mode
from sync_core.directory.vocabulary import Direction
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.ports import Ports, SourceSnapshot
from sync_core.engine.reconciler import ExcelInput, Reconciler, RequestError, RunRequest
from sync_core.engine.scheduler import Scheduler
from sync_core.engine.worker import Worker
from sync_core.excel.snapshot import read_excel
from sync_core.metrics import Metrics
from sync_core.remotes import Remotes, build_remotes
from sync_core.settings import Settings
from sync_core.store.models import EventSource
from sync_core.store.renames import RenameLedger
from sync_core.store.runs import RunConflict
from sync_core.wecom.source import ReadCooldown, WeComSource

log = logging.getLogger(__name__)


@dataclass
class SyncRuntime:
    remotes: Remotes
    sync: EntitySync  # the upstream direction
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
        await self.remotes.aclose()


def upstream_ports(settings: Settings, remotes: Remotes, metrics: Metrics) -> Ports:
    """WeCom (API, or the events' fields while reads are refused) → Authing."""
    source = WeComSource(
        remotes.wecom, cooldown=ReadCooldown(settings.restricted_cooldown_seconds),
        concurrency=settings.wecom_max_concurrency, readable=settings.wecom_readable,
        on_event_fields=lambda kind: metrics.event_field_fallbacks.labels(kind).inc())
    return Ports(Direction.UPSTREAM, "WeCom", "Authing", source, AuthingTarget(remotes.authing),
                 AuthingWriter(remotes.authing, concurrency=settings.authing_max_concurrency),
                 UpstreamPlanner(),
                 Binding.from_settings(settings))


def build_runtime(settings: Settings, engine: Engine, metrics: Metrics, *,
                  wake: asyncio.Event | None = None, dry_run: bool = False,
                  need_wecom: bool = True) -> SyncRuntime:
    """Raises SettingsError naming the first missing credential (``need_wecom``: see
    ``build_remotes``)."""
    remotes = build_remotes(settings, observer=metrics.observe_call, dry_run=dry_run,
                            need_wecom=need_wecom)
    ports = upstream_ports(settings, remotes, metrics)
    sync = UpstreamSync(ports, renames=RenameLedger(engine))

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return await read_excel(ports.source, upload)

    unreadable = None if settings.wecom_readable else (
        "reading WeCom needs WECOM_SYNC_WECOM_CORP_ID and WECOM_SYNC_WECOM_CONTACT_SECRET; "
        "without them only an exported address book can be the source")
    reconciler = Reconciler(settings, engine, sync, excel=excel, source_unreadable=unreadable)

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

    # WeCom callbacks and the operator's injected events go upstream; Authing webhooks
    # wait in the inbox for the downstream direction.
    directions = {EventSource.WECOM.value: sync, EventSource.OPS.value: sync}
    worker = Worker(settings, engine, directions, metrics, wake=wake,
                    on_batch_job=on_batch_job)
    scheduler = Scheduler(settings, engine, scheduled)
    return SyncRuntime(remotes, sync, worker, reconciler, scheduler)
