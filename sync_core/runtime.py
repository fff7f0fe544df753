"""Wiring (the composition root): remotes, the upstream direction's ports under its binding,
entity sync, worker, reconciler and scheduler. The only module that names both the engine
and the platforms; a new direction or platform is wired here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from sync_core.authing.source import AuthingSource
from sync_core.authing.target import AuthingTarget
from sync_core.authing.upstream import UpstreamPlanner
from sync_core.authing.upstream_sync import UpstreamSync
from sync_core.authing.writer import AuthingWriter
from sync_core.binding import Binding
from sync_core.directory.operations import Mode
from sync_core.directory.vocabulary import Direction
from sync_core.engine.echo import RunIntents
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.ports import Ports, SourceSnapshot
from sync_core.engine.reconciler import ExcelInput, Reconciler, RequestError, RunRequest
from sync_core.engine.reconcilers import Reconcilers
from sync_core.engine.scheduler import Scheduler
from sync_core.engine.sync_now import SyncNow
from sync_core.engine.worker import Worker
from sync_core.excel.snapshot import read_excel
from sync_core.metrics import Metrics
from sync_core.remotes import Remotes, build_remotes
from sync_core.settings import DirectionSetting, DownstreamUpdatePolicy, Settings
from sync_core.store.models import EventSource
from sync_core.store.renames import RenameLedger
from sync_core.store.runs import RunConflict
from sync_core.wecom.downstream import DownstreamPlanner, DownstreamPolicy
from sync_core.wecom.source import ReadCooldown, WeComSource
from sync_core.wecom.target import LinkIds, WeComTarget, WeComWriter

log = logging.getLogger(__name__)


@dataclass
class SyncRuntime:
    remotes: Remotes
    sync: EntitySync  # the upstream direction
    worker: Worker
    reconciler: Reconcilers  # one per direction that runs here
    scheduler: Scheduler
    downstream: EntitySync | None = None  # when WECOM_SYNC_DIRECTION is downstream or both

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


def upstream_ports(settings: Settings, remotes: Remotes, metrics: Metrics,
                   engine: Engine | None = None) -> Ports:
    """WeCom (API, or the events' fields while reads are refused) → Authing."""
    source = WeComSource(
        remotes.wecom, cooldown=ReadCooldown(settings.restricted_cooldown_seconds),
        concurrency=settings.wecom_max_concurrency, readable=settings.wecom_readable,
        on_event_fields=lambda kind: metrics.event_field_fallbacks.labels(kind).inc())
    linked = LinkIds(engine).authing_id if engine is not None else None
    return Ports(Direction.UPSTREAM, "WeCom", "Authing", source,
                 AuthingTarget(remotes.authing, linked=linked),
                 AuthingWriter(remotes.authing, concurrency=settings.authing_max_concurrency),
                 UpstreamPlanner(),
                 Binding.from_settings(settings))


def downstream_ports(settings: Settings, remotes: Remotes, engine: Engine) -> Ports:
    """Authing (re-read on every webhook) → WeCom (through the contact-sync secret)."""
    binding = Binding.from_settings(settings)
    policy = DownstreamPolicy(
        update=settings.downstream_update_policy is DownstreamUpdatePolicy.OVERWRITE,
        ignore=frozenset(settings.downstream_ignore_fields),
        userid_source=settings.downstream_userid_source)
    target = WeComTarget(remotes.wecom, remotes.authing, LinkIds(engine),
                         userid_source=settings.downstream_userid_source,
                         concurrency=settings.wecom_max_concurrency,
                         upstream_runs=settings.direction is DirectionSetting.BOTH)
    writer = WeComWriter(remotes.wecom, remotes.authing, target, binding,
                         concurrency=settings.wecom_max_concurrency)
    return Ports(Direction.DOWNSTREAM, "Authing", "WeCom", AuthingSource(
                     remotes.authing, binding, userid_source=settings.downstream_userid_source),
                 target, writer, DownstreamPlanner(policy, binding), binding)


def build_runtime(settings: Settings, engine: Engine, metrics: Metrics, *,
                  wake: asyncio.Event | None = None, dry_run: bool = False,
                  need_wecom: bool = True) -> SyncRuntime:
    """Raises SettingsError naming the first missing credential (``need_wecom``: see
    ``build_remotes``)."""
    remotes = build_remotes(settings, observer=metrics.observe_call, dry_run=dry_run,
                            need_wecom=need_wecom)
    ports = upstream_ports(settings, remotes, metrics, engine)
    sync = UpstreamSync(ports, renames=RenameLedger(engine))

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return await read_excel(ports.source, upload)

    unreadable = None if settings.wecom_readable else (
        "reading WeCom needs WECOM_SYNC_WECOM_CORP_ID and WECOM_SYNC_WECOM_CONTACT_SECRET; "
        "without them only an exported address book can be the source")
    # In both, a run's writes are seen in flight by downstream's hold (engine.echo).
    intents = RunIntents(engine, Direction.UPSTREAM) \
        if settings.direction is DirectionSetting.BOTH else None
    reconciler = Reconciler(settings, engine, sync, excel=excel, source_unreadable=unreadable,
                            intents=intents)
    by_direction = {Direction.UPSTREAM.value: reconciler}

    async def on_batch_job(payload: dict[str, Any]) -> str:
        """A batch import rewrote WeCom behind the callbacks' back: reconcile. A full
        replace may have removed people, so it reconciles in full (the deletion guard
        still applies); an incremental import only creates and updates."""
        if payload.get("eventName") is not None:
            return await tree_changed(payload)
        job_type, job_id = payload.get("job_type"), payload.get("job_id")
        mode = Mode.CREATE_UPDATE if job_type == "sync_user" else Mode.FULL
        try:
            run_id = await reconciler.start(RunRequest(mode=mode, trigger="batch_job"))
        except RunConflict as exc:
            return f"{job_type} job {job_id}: reconcile run {exc.run_id} already active"
        return f"{job_type} job {job_id}: started reconcile run {run_id} ({mode})"

    async def tree_changed(payload: dict[str, Any]) -> str:
        """organization:imported / tree-updated: a downstream reconcile (creates and
        updates; deletes are the scheduled full runs'), unless the tree came from WeCom
        itself (``data.source`` WECHATWORK: pushing it back would be a loop)."""
        event = payload["eventName"]
        data = payload.get("data")
        source = data.get("source") if isinstance(data, dict) else None
        if str(source or "").upper() == "WECHATWORK":
            return f"{event} from WeCom's own import: not pushed back"
        try:
            run_id = await reconcilers.start(RunRequest(
                direction=Direction.DOWNSTREAM.value, mode=Mode.CREATE_UPDATE,
                trigger=event))
        except RunConflict as exc:
            return f"{event}: downstream reconcile run {exc.run_id} already active"
        except RequestError as exc:
            return f"{event}: {exc}"
        return f"{event}: started downstream reconcile run {run_id}"

    async def scheduled(direction: str, trigger: str) -> int | None:
        try:
            return await reconcilers.start(RunRequest(direction=direction, trigger=trigger))
        except RequestError as exc:  # e.g. a direction this version cannot reconcile
            log.warning("scheduled %s reconcile skipped: %s", direction, exc)
            return None

    # WeCom callbacks and the operator's injected events go upstream; Authing webhooks
    # downstream, when it runs (otherwise the route records them as settled).
    directions: dict[str, EntitySync] = {EventSource.OPS.value: sync}
    if settings.direction is not DirectionSetting.DOWNSTREAM:
        directions[EventSource.WECOM.value] = sync
    downstream: EntitySync | None = None
    resolve = None
    if settings.direction in (DirectionSetting.DOWNSTREAM, DirectionSetting.BOTH):
        # An echo of an upstream write is planned against WeCom all the same: it writes
        # nothing when WeCom agrees, and repairs a crossing write when it does not.
        down_ports = downstream_ports(settings, remotes, engine)
        downstream = EntitySync(down_ports, trust_echoes=False)
        assert isinstance(down_ports.target, WeComTarget)
        resolve = down_ports.target.source_key
        directions[EventSource.AUTHING.value] = downstream
        by_direction[Direction.DOWNSTREAM.value] = Reconciler(
            settings, engine, downstream, requeue_source=EventSource.AUTHING.value)
    reconcilers = Reconcilers(engine, by_direction)
    # An operator's sync-now (an ops event about a WeCom key) runs in every direction
    # that runs here, upstream first (engine.sync_now).
    sync_now = SyncNow(
        sync if settings.direction is not DirectionSetting.DOWNSTREAM else None, downstream,
        resolve)
    worker = Worker(settings, engine, directions, metrics, wake=wake,
                    on_batch_job=on_batch_job, sync_now=sync_now)
    scheduler = Scheduler(settings, engine, scheduled)
    return SyncRuntime(remotes, sync, worker, reconcilers, scheduler, downstream)
