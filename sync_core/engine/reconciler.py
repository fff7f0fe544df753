"""The full-compare reconciler: read both sides, plan everything, guard deletes, apply.

Events get lost (and some changes send none); this is what makes the target converge
anyway. A run reads the whole source (through the direction's ``SourceReader``, or an
uploaded file) and the whole target (``TargetReader``), plans with the direction's planner
(the same as incremental sync), and applies through the ``TargetWriter`` in dependency order
with bounded concurrency:

    departments (parents first) → users → user removals → department deletes (children first)

Users to create go to the target ``batch_limit`` at a time in one call where the writer
can batch them (the same bodies); the rest of each user's requests follow one by one.

Outages: a transient failure (5xx, 429, timeout, refused connection) that outlasts a call's
own retries does not end the run. Reads are repeated, and writes re-planned from a fresh
target read and applied again, with capped backoff, until ``retry_window_hours`` after
the first such failure; only then does the run fail (a read) or end ``partial`` (writes).

Safety: an incomplete source read makes no deletes; deletes beyond the thresholds stage
the run as ``blocked`` until an operator approves, and approval re-checks each object is
still absent from the source. A dry run records the same items with nothing applied.

A run never outlives its process in state ``running``: ``interrupt`` (a signal, a shutdown)
cancels it, and the run records at once what it applied, ends ``partial`` (or ``failed``
when nothing was applied) with the reason, and releases its lease.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from sync_core import logs
from sync_core.directory.operations import (
    DESTRUCTIVE,
    Action,
    Mode,
    Operation,
    deletion_guard,
)
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine import run_log as run_items
from sync_core.engine.echo import (
    every_write_by_opposite,
    held_by_run,
    intend,
    is_echo,
    opposite,
)
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.executor import Executor, ItemStatus, Outcome, unapplied
from sync_core.engine.ports import Planner, SourceSnapshot, TargetSnapshot, WriteIntents
from sync_core.engine.run_log import written
from sync_core.errors import ChangedMeanwhile, StopSync, SyncError, TransientError
from sync_core.http.retry import backoff, chunked
from sync_core.settings import Settings
from sync_core.store import inbox, links, runs
from sync_core.store.db import describe
from sync_core.store.inbox import NewEvent
from sync_core.store.links import LinkRow
from sync_core.store.models import RunStatus, utcnow

if TYPE_CHECKING:
    from sync_core.binding import Binding

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExcelInput:
    """An address book to reconcile from. ``sheet``/``start_row``/``end_row`` as in
    ``excel.source.ExcelOptions``; ``keep_top_department``: the paths' top segment (the
    company) becomes a department instead of the organization root; ``departments``: the
    department CSV template (``部门名称,部门ID,父部门ID,排序``), giving the source's real ids."""

    data: bytes
    filename: str
    sheet: int | str | None = None
    start_row: int = 0
    end_row: int = -1
    keep_top_department: bool = False
    departments: bytes | None = None


@dataclass(frozen=True, slots=True)
class RunRequest:
    direction: str = "upstream"
    mode: Mode = Mode.CREATE_UPDATE
    source: str = "api"
    dry_run: bool = False
    trigger: str = "ops"
    excel: ExcelInput | None = field(default=None, repr=False)


class RequestError(ValueError):
    """The run request itself is invalid (bad mode, missing file): a 400, not a run."""


# Reads the exported address book (with the source's structure where readable).
ExcelReader = Callable[[ExcelInput], Awaitable[SourceSnapshot]]


Progress = Callable[[int, int], None]


class Reconciler:
    def __init__(self, settings: Settings, engine: Engine, sync: EntitySync, *,
                 excel: ExcelReader | None = None, source_unreadable: str | None = None,
                 owner: str | None = None, requeue_source: str | None = None,
                 intents: WriteIntents | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        """``source_unreadable``: why the source's API cannot be read at all (missing
        credentials), refusing ``source="api"`` runs; None when it can.
        ``requeue_source``: the inbox source whose events the worker applies in this
        direction; an entity whose write was refused as changed meanwhile is queued
        there, to be read again once the opposite direction has settled (None: the next
        run takes it). ``intents``: where a run records what each write will leave
        before it, when its writer does not itself (``engine.echo.RunIntents``)."""
        self.settings = settings
        self._requeue_source = requeue_source
        self._intents = intents
        self.engine = engine
        self.sync = sync
        self.ports = sync.ports
        self._excel = excel
        self._source_unreadable = source_unreadable
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:reconciler"
        self._clock = clock
        self._lease = timedelta(seconds=max(60.0, settings.worker_lease_seconds))
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: str | None = None

    # -- entry points -------------------------------------------------------------------

    def validate(self, request: RunRequest) -> None:
        if request.direction != self.ports.direction:
            raise RequestError(f"only the {self.ports.direction} direction "
                               f"({self.ports.description}) can be reconciled by this version")
        if request.source not in ("api", "excel"):
            raise RequestError("source must be api or excel")
        if request.source == "excel" and self._excel is None:
            raise RequestError("this direction has no Excel source")
        if request.source == "excel" and request.excel is None:
            raise RequestError("an excel run needs the exported address book file")
        if request.source == "api" and self._source_unreadable:
            raise RequestError(self._source_unreadable)

    def create(self, request: RunRequest) -> int:
        """Record a queued run; raises runs.RunConflict while one of its direction is
        active, RequestError for a bad request."""
        self.validate(request)
        with self.engine.begin() as conn:
            return runs.create(conn, direction=request.direction, mode=str(request.mode),
                               source=request.source, dry_run=request.dry_run,
                               trigger=request.trigger, owner=self.owner, now=self._clock(),
                               lease=self._lease)

    async def start(self, request: RunRequest, progress: Progress | None = None) -> int:
        """Create the run and execute it in the background of this process."""
        run_id = await asyncio.to_thread(self.create, request)
        self._spawn(self.execute(run_id, request, progress), run_id)
        return run_id

    async def approve(self, run_id: int, actor: str = "ops") -> None:
        """Take ``run_id`` from blocked to running (atomically: of concurrent approvals
        one wins), then apply its staged deletes in the background. Raises LookupError or
        runs.DecisionError (not blocked)."""
        now = self._clock()
        run = await asyncio.to_thread(self._db, lambda conn: runs.approve(
            conn, run_id=run_id, actor=actor, owner=self.owner, now=now,
            until=now + self._lease))
        self._spawn(self._apply_staged(run_id, run), run_id)

    async def wait(self) -> None:
        """Until every background run of this process has finished (tests, CLI, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def interrupt(self, reason: str) -> None:
        """Stop every run of this process now, and any it is about to start: each records
        what it applied and ends ``partial``/``failed`` with ``reason`` (e.g. "interrupted
        by SIGTERM"), releasing its lease. ``wait`` returns once they have recorded."""
        self._stopping = reason
        for task in list(self._tasks):
            task.cancel()

    # -- one run ------------------------------------------------------------------------

    async def execute(self, run_id: int, request: RunRequest,
                      progress: Progress | None = None) -> None:
        """Never raises, except CancelledError after recording it: whatever happens ends
        up in the run record."""
        heartbeat = asyncio.create_task(self._heartbeat(run_id))
        applied = _Applied(self.ports.writer.remote, self.ports.target_name)
        cancelled = False
        try:
            if self._stopping:
                raise asyncio.CancelledError
            await asyncio.to_thread(self._db, lambda c: runs.start(c, run_id=run_id,
                                                                   now=self._clock()))
            status, items, error = await self._run(run_id, request, progress, applied)
        except StopSync as exc:
            status, items, error = RunStatus.FAILED, [], f"{type(exc).__name__}: {exc}"
        except SyncError as exc:
            status, items, error = RunStatus.FAILED, [], f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            cancelled = True
            status, items, error = applied.interrupted(self._stopping or "interrupted")
            log.warning("run %s: %s", run_id, error)
        except Exception as exc:  # noqa: BLE001 - a bug must still end the run visibly
            log.exception("reconcile run %s crashed", run_id)
            status, items, error = RunStatus.FAILED, [], f"internal error: {describe(exc)}"
        finally:
            heartbeat.cancel()
        try:
            if cancelled:
                await asyncio.to_thread(self._record_links, applied.links())
            await asyncio.to_thread(self._finish, run_id, status, items, error)
        finally:
            gc.unfreeze()  # see _settled
        if cancelled:
            raise asyncio.CancelledError

    async def _run(self, run_id: int, request: RunRequest, progress: Progress | None,
                   applied: _Applied) -> tuple[RunStatus, list[dict[str, Any]], str | None]:
        _settled(None)  # the process's long-lived objects (modules, app) to begin with
        outage = Outage(timedelta(hours=self.settings.retry_window_hours),
                        self.settings.worker_backoff_cap_seconds, self._clock)
        await outage.ride_out(f"{self.ports.target_name} bootstrap", self.sync.prepare)
        planner = self.ports.planner
        # Before the source read: the opposite direction's writes after it may have been
        # read half done (``engine.echo.held_by_run``).
        since = utcnow()
        source = await self._read_source_through(request, outage)
        target, binding = await self._read_target(outage)
        failed = source.failed
        if source.finish is not None:  # e.g. a file's paths become the tree beside the target
            source = source.finish(target, binding)
        source = _settled(source)
        for note in source.notes:
            await asyncio.to_thread(self._note, run_id, note)
        for note in target.notes:
            await asyncio.to_thread(self._note, run_id, note)
        echoes = await asyncio.to_thread(self._opposite_writes)
        ops = _settled(self._plan(source, target, binding, request, echoes))
        withheld: str | None = None
        if not source.complete:
            await asyncio.to_thread(self._note, run_id, _withheld(source))
            if Mode(request.mode) is not Mode.CREATE_UPDATE:
                withheld = _withheld(source)  # the run's error says why nothing was deleted
        managed = planner.managed(target, binding)
        guard = deletion_guard(ops, managed, self.settings.delete_threshold_percent,
                               self.settings.delete_threshold_count)
        failed_rows = [run_items.failed_row_item(key, error) for key, error in failed]
        if request.dry_run:
            items = [*failed_rows, *(run_items.item_of(unapplied(op, self.ports.writer.remote))
                                     for op in ops)]
            if guard.blocked:  # the shape a real run would have, with nothing staged
                return RunStatus.BLOCKED, items, f"would block: {guard.reason}"
            return (RunStatus.PARTIAL if failed_rows else RunStatus.SUCCEEDED), items, withheld
        staged = [op for op in ops if op.action in DESTRUCTIVE] if guard.blocked else []
        to_apply = [op for op in ops if op not in staged] if staged else ops
        depths = planner.depths(source.departments)
        essences = _essences(planner, source, target, binding)
        applied.begin(to_apply, essences)
        with held_by_run(since):
            outcomes = _unsent(await self._apply(run_id, to_apply, depths, progress, applied))
            while _transient(outcomes) and await outage.wait(
                    f"{self.ports.target_name} writes", _hint(outcomes)):
                # Level-triggered: re-read the target and plan again, so a write that
                # landed before its answer was lost is not repeated, and whatever it held
                # up follows.
                target, binding = await self._read_target(outage)
                # Not planned again: the staged, and the refused as changed meanwhile
                # (``_unsent``), whose plan would come from the same read.
                held = {(op.kind, op.key) for op in staged} | {
                    (o.op.kind, o.op.key) for o in outcomes if _refused(o)}
                again = [op for op in self._plan(source, target, binding, request, echoes)
                         if (op.kind, op.key) not in held]
                applied.carry(outcomes, again)
                outcomes = _merge(outcomes, _unsent(await self._apply(
                    run_id, again, depths, progress, applied)))
        self.ports.target.forget()  # caches of the target's keys (the worker's) may be stale
        await asyncio.to_thread(self._record_links, written(outcomes, essences))
        await asyncio.to_thread(self._requeue, run_id, outcomes)
        items = [*failed_rows, *(run_items.item_of(o) for o in outcomes)]
        items += [run_items.staged_item(op) for op in staged]
        if guard.blocked:
            return RunStatus.BLOCKED, items, f"blocked: {guard.reason}"
        partial = failed_rows or any(o.status is ItemStatus.FAILED for o in outcomes)
        return (RunStatus.PARTIAL if partial else RunStatus.SUCCEEDED), items, withheld

    async def _read_source_through(self, request: RunRequest,
                                   outage: Outage) -> SourceSnapshot:
        """The source, read again while an outage spoils it (within the time budget); after
        that, what could be read (incomplete: no deletes)."""
        what = f"{self.ports.source_name} read"
        while True:
            source = await outage.ride_out(what, lambda: self._read_source(request))
            if not source.retryable or not await outage.wait(what, None):
                return source

    async def _read_target(self, outage: Outage) -> tuple[TargetSnapshot, Binding]:
        target = await outage.ride_out(f"{self.ports.target_name} read",
                                       lambda: self.ports.target.snapshot(self.sync.binding))
        binding = self.sync.binding
        if target.root_department_id:
            binding = replace(binding, root_department_id=target.root_department_id)
        return _settled(target), binding

    def _plan(self, source: SourceSnapshot, target: TargetSnapshot, binding: Binding,
              request: RunRequest, echoes: Mapping[tuple[str, str], str]) -> list[Operation]:
        ops = list(self.ports.planner.plan_all(source, target, binding, Mode(request.mode)))
        ops = self._not_recreated(ops, source, echoes)
        return ops if source.complete else run_items.withhold_deletes(ops, _withheld(source))

    def _opposite_writes(self) -> dict[tuple[str, str], str]:
        with self.engine.connect() as conn:
            return every_write_by_opposite(conn, self.ports.direction)

    def _not_recreated(self, ops: list[Operation], source: SourceSnapshot,
                       echoes: Mapping[tuple[str, str], str]) -> list[Operation]:
        """A create for a source record whose state is what the opposite direction last
        wrote there (engine.echo): the record exists in the source only because that
        direction put it there, so the target's lack of it is a deletion made on the
        target's side since, not something new to create (a user deleted in downstream's
        source, whose record downstream then disabled, is not re-created by an upstream
        run from that disabled record)."""
        creates = {(op.kind, op.key) for op in ops
                   if op.action is Action.CREATE and (op.kind, op.key) in echoes}
        if not creates:
            return ops
        planner = self.ports.planner
        echoed = set()
        for kind, records in ((Kind.USER, source.users), (Kind.DEPARTMENT, source.departments)):
            for record in records:
                entity = (kind, planner.source_key(kind, record))
                if entity in creates and is_echo(planner.source_essence(kind, record),
                                                 echoes[entity]):
                    echoed.add(entity)
        reason = (f"not re-created: {self.ports.source_name} holds what the "
                  f"{opposite(self.ports.direction)} direction last wrote to it, and "
                  f"{self.ports.target_name} has removed it since")
        return [replace(op, action=Action.SKIP, requests=(), needs=(), reason=reason,
                        cause=Cause.POLICY) if (op.kind, op.key) in echoed else op
                for op in ops]

    async def _read_source(self, request: RunRequest) -> SourceSnapshot:
        """From the API, or from the file (its snapshot may carry rows that failed, and
        a ``finish`` that needs the target)."""
        if request.source == "api":
            return await self.ports.source.snapshot()
        assert request.excel is not None and self._excel is not None
        return await self._excel(request.excel)

    # -- applying -----------------------------------------------------------------------

    async def _apply(self, run_id: int, ops: Sequence[Operation], depth: dict[str, int],
                     progress: Progress | None, applied: _Applied) -> list[Outcome]:
        executor = Executor(self.ports.writer)
        ids: dict[str, str] = {}
        gate = asyncio.Semaphore(self.ports.writer.concurrency)
        writer = self.ports.writer  # the run records its writes at its end: intents first
        intents = writer if isinstance(writer, WriteIntents) else self._intents
        before = functools.partial(intend, intents, applied.essence) \
            if intents is not None else None
        # Operations that write nothing (all of them, in a no-op run) need no task.
        results = applied.results
        done = 0
        total = sum(1 for op in ops if op.writes)

        async def one(index: int, op: Operation, sent: int = 0,
                      created: str | None = None) -> None:
            nonlocal done
            async with gate:
                applied.in_flight.add(index)
                results[index] = await executor.apply_one(op, ids, sent=sent, created=created,
                                                          before=before)
                applied.settle(index)
            done += 1
            if progress:
                progress(done, total)
            if done % 200 == 0:
                await asyncio.to_thread(self._progress, run_id, done, total)

        async def created(group: list[tuple[int, Operation]]) -> None:
            async with gate:
                applied.in_flight.update(i for i, _ in group)
                sent = await executor.create_users([op for _, op in group])
            await asyncio.gather(*(one(i, op, n, target) for (i, op), (n, target)
                                   in zip(group, sent, strict=True)))

        for phase in _phases(ops, depth):
            writes = [(i, op) for i, op in phase if op.writes]
            creates = [(i, op) for i, op in writes if executor.batchable(op)]
            if len(creates) < 2:  # a batch of one saves nothing
                creates = []
            batched = {i for i, _ in creates}
            await asyncio.gather(
                *(created(group) for group in chunked(creates, self.ports.writer.batch_limit)),
                *(one(i, op) for i, op in writes if i not in batched))
        await asyncio.to_thread(self._progress, run_id, done, total)
        return results

    async def _apply_staged(self, run_id: int, run: dict[str, Any]) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(run_id))
        try:
            if self._stopping:
                raise asyncio.CancelledError
            staged = await asyncio.to_thread(self._items, run_id, run_items.STAGED)
            executor = Executor(self.ports.writer)
            for item in staged:
                op = run_items.operation_from_json(item["operation"])
                error: str | None
                if await self._present_in_source(op, run.get("source") == "excel"):
                    status = ItemStatus.SKIPPED
                    error = f"not applied: present again in {self.ports.source_name}"
                else:
                    outcome = await executor.apply_one(op, {})
                    status, error = outcome.status, outcome.error_text
                    await asyncio.to_thread(self._record_links,
                                            written([outcome], lambda kind, key: None))
                await asyncio.to_thread(self._update_item, item["id"], status, error)
            everything = await asyncio.to_thread(self._items, run_id, None)
            failed = any(i["status"] == ItemStatus.FAILED for i in everything)
            final = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
            await asyncio.to_thread(self._db, lambda c: runs.finish(
                c, run_id=run_id, status=final, counters=run_items.count(everything),
                now=self._clock(), error=None))
        except asyncio.CancelledError:
            # Each staged item was recorded as it was applied; the rest were not applied.
            reason = self._stopping or "interrupted"

            def not_applied(conn: Any) -> None:
                for left in runs.items(conn, run_id, status=run_items.STAGED):
                    runs.update_item(conn, item_id=left["id"], status=ItemStatus.SKIPPED,
                                     error=f"not applied: {reason}")

            await asyncio.to_thread(self._db, not_applied)
            everything = await asyncio.to_thread(self._items, run_id, None)
            done = any(i["status"] == ItemStatus.APPLIED and i["action"] in _DESTRUCTIVE
                       for i in everything)
            await asyncio.to_thread(self._db, lambda c: runs.finish(
                c, run_id=run_id, status=RunStatus.PARTIAL if done else RunStatus.FAILED,
                counters=run_items.count(everything), now=self._clock(),
                error=f"{reason} while applying the approved deletes"))
            raise
        except Exception as exc:  # noqa: BLE001 - the run record must say what happened
            log.exception("approving run %s failed", run_id)
            reason = f"approval failed: {type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._db, lambda c: runs.finish(
                c, run_id=run_id, status=RunStatus.FAILED, counters=run["counters"],
                now=self._clock(), error=reason))
        finally:
            heartbeat.cancel()

    async def _present_in_source(self, op: Operation, from_file: bool) -> bool:
        """Approval re-checks absence: an entity back in the source is not deleted. For a
        run from a file, the source is asked where it can answer; where it cannot (a key
        only the file gave, a source without credentials: why a file was used), the file's
        word stands."""
        try:
            return await self.ports.source.present(
                op.kind, op.key, None if op.target is None else str(op.target))
        except StopSync:
            raise
        except SyncError:
            if from_file:
                return False
            raise

    # -- bookkeeping --------------------------------------------------------------------

    def cancel(self, run_id: int) -> bool:
        """Stop this process's task for ``run_id`` (the store already marked it cancelled:
        ``runs.cancel``); False when the run is not running here."""
        found = [t for t in self._tasks if t.get_name() == f"run-{run_id}"]
        for task in found:
            task.cancel()
        return bool(found)

    def _spawn(self, job: Awaitable[None], run_id: int) -> None:
        with logs.bind(run_id=run_id):  # the task copies the context: all its lines say so
            task: asyncio.Task[None] = asyncio.ensure_future(job)
        task.set_name(f"run-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                renewed = await asyncio.to_thread(self._db, lambda c: runs.renew(
                    c, run_id=run_id, owner=self.owner, until=self._clock() + self._lease))
            except Exception:  # noqa: BLE001 - a database blip must not end the heartbeat
                log.warning("run %s: could not renew its lease; retrying", run_id,
                            exc_info=True)
                continue
            if not renewed:  # cancelled by an operator (or swept): stop writing
                log.warning("run %s lost its lease (cancelled?): stopping it", run_id)
                self.cancel(run_id)
                return

    def _db(self, step: Callable[[Any], Any]) -> Any:
        with self.engine.begin() as conn:
            return step(conn)

    def _get(self, run_id: int) -> dict[str, Any] | None:
        return self._db(lambda c: runs.get(c, run_id))  # type: ignore[no-any-return]

    def _items(self, run_id: int, status: str | None) -> list[dict[str, Any]]:
        return self._db(lambda c: runs.items(c, run_id, status=status))  # type: ignore[no-any-return]

    def _record_links(self, rows: list[LinkRow]) -> None:
        if rows:
            self._db(lambda c: links.record(c, direction=self.ports.direction, rows=rows,
                                            now=self._clock()))

    def _requeue(self, run_id: int, outcomes: Sequence[Outcome]) -> None:
        """The entities whose writes were refused as changed meanwhile, queued for the
        worker (``requeue_source``): the opposite direction's event about one may be the
        echo of this direction's own write, which brings nothing back of itself."""
        refused = {(str(o.op.kind), o.op.key) for o in outcomes if _refused(o)}
        if not refused or self._requeue_source is None:
            return
        now = utcnow()
        events = [NewEvent(source=self._requeue_source,
                           dedupe_key=f"run {run_id}: {kind} {key}", entity_kind=kind,
                           entity_key=key, event_type="reconcile_requeue",
                           payload={"run_id": run_id, "reason": "changed meanwhile"},
                           received_at=now) for kind, key in sorted(refused)]
        self._db(lambda c: inbox.insert_new(c, events))

    def _update_item(self, item_id: int, status: ItemStatus, error: str | None) -> None:
        self._db(lambda c: runs.update_item(c, item_id=item_id, status=str(status), error=error))

    def _note(self, run_id: int, note: str) -> None:
        self._db(lambda c: runs.add_note(c, run_id=run_id, note=note))

    def _progress(self, run_id: int, done: int, total: int) -> None:
        self._db(lambda c: runs.progress(c, run_id=run_id, done=done, total=total))

    def _finish(self, run_id: int, status: RunStatus, items: list[dict[str, Any]],
                error: str | None) -> None:
        """Record the items and end the run. Should the items not go in, the run still
        ends (failed, saying so), or it would stay ``running`` until its lease expired."""
        counters = run_items.count(items)
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(items), 5000):
                    runs.add_items(conn, run_id=run_id, items=items[start:start + 5000],
                                   first_seq=start)
                runs.finish(conn, run_id=run_id, status=status, counters=counters,
                            now=self._clock(), error=error)
        except Exception as exc:  # noqa: BLE001 - the run must end either way
            log.exception("run %s: its items could not be recorded", run_id)
            reason = f"its {len(items)} items could not be recorded ({describe(exc)})"
            try:
                with self.engine.begin() as conn:
                    runs.finish(conn, run_id=run_id, status=RunStatus.FAILED,
                                counters=counters, now=self._clock(),
                                error=f"{error}; {reason}" if error else reason)
            except Exception:  # noqa: BLE001 - nothing more to do from here
                log.exception("run %s could not be ended; it is failed when its lease "
                              "expires", run_id)
                return
        log.info("run %s %s: %s", run_id, status, counters)


_DESTRUCTIVE = {str(a) for a in DESTRUCTIVE}


class _Applied:
    """What a run has done so far, for the record an interrupted run leaves: the plan
    being applied, each operation's outcome once settled, and those cut off in flight."""

    def __init__(self, remote: str, target_name: str) -> None:
        self.remote, self.target_name = remote, target_name
        self.ops: Sequence[Operation] = ()
        self.results: list[Outcome] = []
        self.in_flight: set[int] = set()
        self.settled: set[int] = set()
        self.earlier: list[Outcome] = []  # outcomes of the passes before this one
        self._essence: Callable[[str, str], Any] = lambda kind, key: None

    def begin(self, ops: Sequence[Operation], essence: Callable[[str, str], Any]) -> None:
        self.ops, self._essence = ops, essence
        self.results = [unapplied(op, self.remote) for op in ops]

    def essence(self, kind: str, key: str) -> Any:
        """What the target shows after the write of (kind, key) (``run_log.written``)."""
        return self._essence(kind, key)

    def carry(self, earlier: list[Outcome], ops: Sequence[Operation]) -> None:
        """Start another pass over ``ops`` (a re-plan after transient failures), keeping
        the earlier passes' outcomes for the record of an interruption."""
        self.earlier = _merge(self.earlier, earlier) if self.earlier else list(earlier)
        self.ops, self.results = ops, [unapplied(op, self.remote) for op in ops]
        self.in_flight, self.settled = set(), set()

    def settle(self, index: int) -> None:
        self.in_flight.discard(index)
        self.settled.add(index)

    def links(self) -> list[LinkRow]:
        return written(self.earlier + [self.results[i] for i in self.settled], self._essence)

    def interrupted(self, reason: str) -> tuple[RunStatus, list[dict[str, Any]], str]:
        """Status, items and error of a run stopped now. Settled operations keep their
        outcome; one cut off in flight may have reached the target and counts as failed; one
        not begun is skipped. Partial once anything was applied, else failed. Earlier
        passes' outcomes stand for the objects this pass does not touch again."""
        again = {(op.kind, op.key) for op in self.ops}
        kept = [o for o in self.earlier if (o.op.kind, o.op.key) not in again]
        items = [run_items.item_of(o) for o in kept]
        for index, op in enumerate(self.ops):
            if index in self.settled or not op.writes:
                items.append(run_items.item_of(self.results[index]))
            elif index in self.in_flight:
                items.append({**run_items.item_of(Outcome(op, ItemStatus.FAILED)),
                              "error": f"{reason} while being applied: it may have "
                                       f"reached {self.target_name}; the next run completes "
                                       "it"})
            else:
                items.append({**run_items.item_of(Outcome(op, ItemStatus.SKIPPED)),
                              "error": f"not applied: {reason}"})
        done = (sum(1 for i in self.settled if self.results[i].status is ItemStatus.APPLIED)
                + sum(1 for o in kept if o.status is ItemStatus.APPLIED))
        writes = sum(1 for op in self.ops if op.writes) + sum(1 for o in kept if o.op.writes)
        error = (f"{reason} after applying {done} of {writes} changes" if self.ops
                 else f"{reason} before applying anything")
        return (RunStatus.PARTIAL if done else RunStatus.FAILED), items, error


class Outage:
    """A run's time budget for transient failures (upstream outages, throttling): from the
    first one, waits with capped exponential backoff and jitter (never below Retry-After)
    until ``window`` has passed. Permanent errors never come here."""

    def __init__(self, window: timedelta, cap_seconds: float,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.window = window
        self.cap = cap_seconds
        self._clock = clock
        self._since: datetime | None = None
        self.waits = 0

    async def wait(self, what: str, retry_after: float | None) -> bool:
        """Sleep before the next try and answer True; False once the window is spent."""
        now = self._clock()
        self._since = self._since or now
        if now - self._since >= self.window:
            log.error("%s: transient failures for more than %s; giving up", what, self.window)
            return False
        self.waits += 1
        delay = backoff(self.waits, self.cap, retry_after)
        log.warning("%s failed transiently; trying again in %.1f s", what, delay)
        await asyncio.sleep(delay)
        return True

    async def ride_out(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, repeated after each TransientError while the window lasts."""
        while True:
            try:
                return await call()
            except TransientError as exc:
                if not await self.wait(what, exc.retry_after):
                    raise


def _unsent(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """A write refused because the opposite direction wrote its entity after the run read
    it (``ChangedMeanwhile``) is skipped, not retried: planning it again would plan from
    the same read, and the opposite direction's write comes back as its own event."""
    return [replace(o, status=ItemStatus.SKIPPED)
            if o.status is ItemStatus.FAILED and isinstance(o.error, ChangedMeanwhile) else o
            for o in outcomes]


def _refused(outcome: Outcome) -> bool:
    """Skipped by ``_unsent``: refused as changed meanwhile."""
    return outcome.status is ItemStatus.SKIPPED and isinstance(outcome.error, ChangedMeanwhile)


def _transient(outcomes: Sequence[Outcome]) -> bool:
    return any(o.status is ItemStatus.FAILED and isinstance(o.error, TransientError)
               for o in outcomes)


def _hint(outcomes: Sequence[Outcome]) -> float | None:
    return max((o.error.retry_after or 0.0 for o in outcomes
                if isinstance(o.error, TransientError)), default=0.0) or None


def _merge(first: list[Outcome], again: list[Outcome]) -> list[Outcome]:
    """The first pass's outcomes, with each failed one replaced by what the next pass did
    for that object. A failed write that the next plan finds already done landed after
    all (its answer was lost): applied."""
    later = {(o.op.kind, o.op.key): o for o in again}
    merged = []
    for outcome in first:
        redo = later.get((outcome.op.kind, outcome.op.key))
        if outcome.status is not ItemStatus.FAILED or redo is None:
            merged.append(outcome)
        elif redo.status is ItemStatus.UNCHANGED:
            merged.append(Outcome(outcome.op, ItemStatus.APPLIED))
        else:
            merged.append(redo)
    return merged


def _withheld(source: SourceSnapshot) -> str:
    return ("not deleted: the source read was incomplete (" + "; ".join(source.problems[:3]) +
            (f"; and {len(source.problems) - 3} more" if len(source.problems) > 3 else "") +
            ")")


def _settled(value: T) -> T:
    """``value`` (a snapshot or a plan: 10^5 objects that live until the run ends) and
    whatever else is alive now are moved out of the cyclic collector's reach, which
    otherwise re-traverses them in every full collection the run's HTTP traffic triggers
    (a quarter of a 100k-user run's CPU). ``execute`` unfreezes when the run ends;
    reference counting still frees anything dropped before."""
    gc.freeze()
    return value


def _essences(planner: Planner, source: SourceSnapshot, target: TargetSnapshot,
              binding: Binding) -> Callable[[str, str], Any]:
    """What the target shows after each write, computed only for the entities written."""
    def by_key(kind: Kind, records: Sequence[Any], side: Callable[[Kind, Any], str | None]
               ) -> dict[str | None, Any]:
        return {side(kind, r): r for r in records}

    desired = {Kind.USER: by_key(Kind.USER, source.users, planner.source_key),
               Kind.DEPARTMENT: by_key(Kind.DEPARTMENT, source.departments,
                                       planner.source_key)}
    actual = {Kind.USER: by_key(Kind.USER, target.users, planner.linked_key),
              Kind.DEPARTMENT: by_key(Kind.DEPARTMENT, target.departments,
                                      planner.linked_key)}

    def essence(kind: str, key: str) -> Any:
        which = Kind(kind)
        return planner.essence(which, desired[which].get(key), actual[which].get(key),
                               binding)

    return essence


def _phases(ops: Sequence[Operation], depth: dict[str, int]
            ) -> list[list[tuple[int, Operation]]]:
    """Groups that may run concurrently, in the order the planner requires: department
    upserts level by level, then users, then user removals, then department deletes one
    at a time in the planner's children-first order (gone from the source, their depth is
    only known to the planner)."""
    upserts: dict[int, list[tuple[int, Operation]]] = {}
    deletes: list[list[tuple[int, Operation]]] = []
    users: list[tuple[int, Operation]] = []
    removals: list[tuple[int, Operation]] = []
    for index, op in enumerate(ops):
        if op.kind is Kind.DEPARTMENT:
            if op.action in DESTRUCTIVE:
                deletes.append([(index, op)])
            else:
                upserts.setdefault(depth.get(op.key, 99), []).append((index, op))
        else:
            (removals if op.action in DESTRUCTIVE else users).append((index, op))
    return [upserts[k] for k in sorted(upserts)] + [users, removals] + deletes
