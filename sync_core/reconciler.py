"""The full-compare reconciler: read both sides, plan everything, guard deletes, apply.

Callbacks get lost and, since 2022, a department rename sends none; this is what makes the
directory converge anyway. A run reads the whole WeCom directory (API or exported Excel)
and the whole Authing organization, plans with the same pure planner as incremental sync,
and applies in dependency order with bounded concurrency:

    departments (parents first) → users → user removals → department deletes (children first)

Users to create go to Authing 50 at a time (create-users-batch, the same bodies), then each
gets its own set-user-departments, as batch creation sets no main department or leader.

Outages: a transient failure (5xx, 429, timeout, refused connection) that outlasts a call's
own retries does not end the run. Reads are repeated, and writes re-planned from a fresh
Authing read and applied again, with capped backoff, until ``retry_window_hours`` after
the first such failure; only then does the run fail (a read) or end ``partial`` (writes).

Safety: an incomplete source read makes no deletes; deletes beyond the thresholds stage
the run as ``blocked`` until an operator approves, and approval re-checks each object is
still absent from WeCom. A dry run records the same items with nothing applied.

A run never outlives its process in state ``running``: ``interrupt`` (a signal, a shutdown)
cancels it, and the run records at once what it applied, ends ``partial`` (or ``failed``
when nothing was applied) with the reason, and releases its lease.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine

from . import logs, run_items
from .authing_client import BATCH_LIMIT
from .errors import NotFoundError, RestrictedError, StopSync, SyncError, TransientError
from .excel_rows import PATHS_NOTE, RowFailure
from .excel_source import AddressBook, ExcelOptions, merge_sources, read_upload
from .excel_tree import build_tree
from .executor import Executor, ItemStatus, Outcome, batchable, unapplied
from .http_retry import backoff, chunked
from .mapping import department_id_of, department_open_id, is_synthetic
from .model import WeComDepartment
from .operations import DESTRUCTIVE, Kind, Operation, deletion_guard
from .planner import Mode, Policy, count_managed, plan_full
from .run_items import written
from .settings import Settings
from .snapshots import SourceSnapshot, TargetSnapshot, read_authing, read_wecom
from .store import links, runs
from .store.db import describe
from .store.links import LinkRow
from .store.models import RunStatus, utcnow
from .upstream_sync import UpstreamSync

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExcelInput:
    """An address book to reconcile from. ``sheet``/``start_row``/``end_row`` as in
    ``excel_source.ExcelOptions``; ``keep_top_department``: the paths' top segment (the
    company) becomes a department instead of the organization root; ``departments``: the
    department CSV template (``部门名称,部门ID,父部门ID,排序``), giving WeCom's real ids."""

    data: bytes
    filename: str
    sheet: int | str | None = None
    start_row: int = 0
    end_row: int = -1
    keep_top_department: bool = False
    departments: bytes | None = None


@dataclass(frozen=True, slots=True)
class _FileSource(SourceSnapshot):
    """A source read from a file: ``book`` is the address book whose department paths
    still have to become the tree (the file alone, ``excel_tree``; it needs Authing's
    state), ``failures`` the rows that could not be read."""

    book: AddressBook | None = None
    failures: tuple[RowFailure, ...] = ()


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


def check_excel(excel: ExcelInput) -> None:
    """Refuse a file of the wrong shape (type, sheet, header, options) before a run
    exists, naming the place; bad rows are not refused here: they fail their own items.
    Raises ``RequestError``."""
    try:
        read_upload(excel.data, excel.filename, ExcelOptions(
            sheet=excel.sheet, start_row=excel.start_row, end_row=excel.end_row),
            departments_csv=excel.departments)
    except ValueError as exc:  # ExcelSourceError, or bad options (end_row < start_row)
        raise RequestError(str(exc)) from None


Progress = Callable[[int, int], None]


class Reconciler:
    def __init__(self, settings: Settings, engine: Engine, sync: UpstreamSync, *,
                 owner: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.engine = engine
        self.sync = sync
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:reconciler"
        self._clock = clock
        self._lease = timedelta(seconds=max(60.0, settings.worker_lease_seconds))
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: str | None = None

    # -- entry points -------------------------------------------------------------------

    def validate(self, request: RunRequest) -> None:
        if request.direction != "upstream":
            raise RequestError("only the upstream direction (WeCom → Authing) can be "
                               "reconciled by this version")
        if request.source not in ("api", "excel"):
            raise RequestError("source must be api or excel")
        if request.source == "excel" and request.excel is None:
            raise RequestError("an excel run needs the exported address book file")
        if request.source == "api" and not self.settings.wecom_readable:
            raise RequestError("reading WeCom needs WECOM_SYNC_WECOM_CORP_ID and "
                               "WECOM_SYNC_WECOM_CONTACT_SECRET; without them only an "
                               "exported address book can be the source")

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

    async def approve(self, run_id: int) -> None:
        """Validate that ``run_id`` is blocked, then apply its staged deletes in the
        background. Raises LookupError / RequestError."""
        run = await asyncio.to_thread(self._get, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        if run["status"] != RunStatus.BLOCKED:
            raise RequestError(f"run {run_id} is {run['status']}, not blocked")
        await asyncio.to_thread(self._db, lambda c: (
            runs.start(c, run_id=run_id, now=self._clock()),
            runs.take(c, run_id=run_id, owner=self.owner, until=self._clock() + self._lease)))
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
        applied = _Applied()
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
        await outage.ride_out("Authing bootstrap", self.sync.bootstrap)
        source = await self._read_source_through(request, outage)
        target, policy = await self._read_target(outage)
        failures: tuple[RowFailure, ...] = ()
        if isinstance(source, _FileSource):
            failures = source.failures
            if source.book is not None:  # the file alone: its paths become the tree
                assert request.excel is not None
                tree = build_tree(source.book.users, dict(source.book.department_paths),
                                  target.departments, target.users, policy,
                                  keep_top=request.excel.keep_top_department)
                source = SourceSnapshot(tree.users, tree.departments, source.problems,
                                        (*source.notes, *tree.notes))
                tree = None  # type: ignore[assignment]  # 10^5 rows: let them go
        source = _settled(source)
        for note in source.notes:
            await asyncio.to_thread(self._note, run_id, note)
        ops = _settled(self._plan(source, target, policy, request))
        withheld: str | None = None
        if not source.complete:
            await asyncio.to_thread(self._note, run_id, _withheld(source))
            if Mode(request.mode) is not Mode.CREATE_UPDATE:
                withheld = _withheld(source)  # the run's error says why nothing was deleted
        managed = count_managed(target.users, target.departments, policy)
        guard = deletion_guard(ops, managed, self.settings.delete_threshold_percent,
                               self.settings.delete_threshold_count)
        failed_rows = [run_items.failed_row_item(f.key, f.error) for f in failures]
        if request.dry_run:
            items = [*failed_rows, *(run_items.item_of(unapplied(op)) for op in ops)]
            if guard.blocked:
                await asyncio.to_thread(self._note, run_id, f"would block: {guard.reason}")
            return (RunStatus.PARTIAL if failed_rows else RunStatus.SUCCEEDED), items, withheld
        staged = [op for op in ops if op.action in DESTRUCTIVE] if guard.blocked else []
        to_apply = [op for op in ops if op not in staged] if staged else ops
        states = {**{("user", u.userid): u for u in source.users},
                  **{("department", department_open_id(d.id)): d for d in source.departments}}
        applied.begin(to_apply, states)
        outcomes = await self._apply(run_id, to_apply, source.departments, progress, applied)
        while _transient(outcomes) and await outage.wait("Authing writes", _hint(outcomes)):
            # Level-triggered: re-read Authing and plan again, so a write that landed
            # before its answer was lost is not repeated, and whatever it held up follows.
            target, policy = await self._read_target(outage)
            held = {(op.kind, op.key) for op in staged}
            again = [op for op in self._plan(source, target, policy, request)
                     if (op.kind, op.key) not in held]
            applied.carry(outcomes, again)
            outcomes = _merge(outcomes, await self._apply(run_id, again, source.departments,
                                                          progress, applied))
        self.sync.forget_rekeyed()  # the worker's view of re-keyed departments may be stale
        await asyncio.to_thread(self._record_links, written(outcomes, states))
        items = [*failed_rows, *(run_items.item_of(o) for o in outcomes)]
        items += [run_items.staged_item(op) for op in staged]
        if guard.blocked:
            return RunStatus.BLOCKED, items, f"blocked: {guard.reason}"
        failed = failed_rows or any(o.status is ItemStatus.FAILED for o in outcomes)
        return (RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED), items, withheld

    async def _read_source_through(self, request: RunRequest,
                                   outage: Outage) -> SourceSnapshot:
        """The source, read again while an outage spoils it (within the time budget); after
        that, what could be read (incomplete: no deletes)."""
        while True:
            source = await outage.ride_out("WeCom read", lambda: self._read_source(request))
            if not source.retryable or not await outage.wait("WeCom read", None):
                return source

    async def _read_target(self, outage: Outage) -> tuple[TargetSnapshot, Policy]:
        target = await outage.ride_out(
            "Authing read", lambda: read_authing(self.sync.authing, self.sync.policy))
        policy = self.sync.policy
        if target.root_department_id:
            policy = replace(policy, root_department_id=target.root_department_id)
        return _settled(target), policy

    @staticmethod
    def _plan(source: SourceSnapshot, target: TargetSnapshot, policy: Policy,
              request: RunRequest) -> list[Operation]:
        ops = list(plan_full(source.users, source.departments, target.users,
                             target.departments, policy, Mode(request.mode)))
        return ops if source.complete else run_items.withhold_deletes(ops, _withheld(source))

    async def _read_source(self, request: RunRequest) -> SourceSnapshot:
        """From the API, or from the file (a ``_FileSource``: with the address book whose
        paths still need a tree when the file stands alone, and the rows that failed)."""
        if request.source == "api":
            return await read_wecom(self.sync.wecom,
                                    concurrency=self.settings.wecom_max_concurrency)
        assert request.excel is not None
        return await self._read_excel(request.excel)

    async def _read_excel(self, excel: ExcelInput) -> _FileSource:
        """The API gives structure where it may be read; the file gives attributes. With
        no readable API the file stands alone: its department paths become the tree
        (``excel_tree``), or the department CSV gives WeCom's ids. Whatever it cannot
        establish (rows outside the chosen window, rows that failed) rules out deletes."""
        structure: SourceSnapshot | None = None
        try:
            if self.settings.wecom_readable:
                structure = await read_wecom(self.sync.wecom,
                                             concurrency=self.settings.wecom_max_concurrency)
        except SyncError as exc:  # incl. refused reads (60020, 48002): the file's purpose
            log.info("WeCom API not readable, using the Excel file alone: %s", exc)
        options = ExcelOptions(sheet=excel.sheet, start_row=excel.start_row,
                               end_row=excel.end_row)
        book = await asyncio.to_thread(lambda: read_upload(
            excel.data, excel.filename, options, departments_csv=excel.departments))
        notes = tuple(w for w in book.warnings if PATHS_NOTE not in w)
        problems = [] if structure is None else list(structure.problems)
        if not book.complete:
            problems.append("the chosen sheet or rows leave out part of the file")
        if book.failures:
            problems.append(f"{len(book.failures)} rows of the file failed")
        if structure is not None and structure.complete:
            users = merge_sources(structure.users, structure.departments, book.users)
            return _FileSource(tuple(users), structure.departments, tuple(problems),
                               (*structure.notes, *notes), failures=book.failures)
        return _FileSource(book.users, book.departments or (), tuple(problems), notes,
                           book=book if book.departments is None else None,
                           failures=book.failures)

    # -- applying -----------------------------------------------------------------------

    async def _apply(self, run_id: int, ops: Sequence[Operation],
                     departments: Sequence[WeComDepartment],
                     progress: Progress | None, applied: _Applied) -> list[Outcome]:
        executor = Executor(self.sync.authing)
        ids: dict[str, str] = {}
        depth = _depths(departments)
        gate = asyncio.Semaphore(self.settings.authing_max_concurrency)
        # Operations that write nothing (all of them, in a no-op run) need no task.
        results = applied.results
        done = 0
        total = sum(1 for op in ops if op.writes)

        async def one(index: int, op: Operation, sent: int = 0) -> None:
            nonlocal done
            async with gate:
                applied.in_flight.add(index)
                results[index] = await executor.apply_one(op, ids, sent=sent)
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
            await asyncio.gather(*(one(i, op, n) for (i, op), n in zip(group, sent,
                                                                        strict=True)))

        for phase in _phases(ops, depth):
            writes = [(i, op) for i, op in phase if op.writes]
            creates = [(i, op) for i, op in writes if batchable(op)]
            if len(creates) < 2:  # a batch of one saves nothing
                creates = []
            batched = {i for i, _ in creates}
            await asyncio.gather(
                *(created(group) for group in chunked(creates, BATCH_LIMIT)),
                *(one(i, op) for i, op in writes if i not in batched))
        await asyncio.to_thread(self._progress, run_id, done, total)
        return results

    async def _apply_staged(self, run_id: int, run: dict[str, Any]) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(run_id))
        try:
            if self._stopping:
                raise asyncio.CancelledError
            staged = await asyncio.to_thread(self._items, run_id, run_items.STAGED)
            executor = Executor(self.sync.authing)
            for item in staged:
                op = run_items.operation_from_json(item["operation"])
                if await self._present_in_source(op, run.get("source") == "excel"):
                    status, error = ItemStatus.SKIPPED, "not applied: present again in WeCom"
                else:
                    outcome = await executor.apply_one(op, {})
                    status, error = outcome.status, outcome.error_text
                    await asyncio.to_thread(self._record_links, written([outcome], {}))
                await asyncio.to_thread(self._db, lambda c, i=item, s=status, e=error:
                                        runs.update_item(c, item_id=i["id"], status=str(s),
                                                         error=e))
            everything = await asyncio.to_thread(self._items, run_id, None)
            failed = any(i["status"] == ItemStatus.FAILED for i in everything)
            status = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
            await asyncio.to_thread(self._db, lambda c: runs.finish(
                c, run_id=run_id, status=status, counters=run_items.count(everything),
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

    async def _present_in_source(self, op: Operation, from_file: bool = False) -> bool:
        """Approval re-checks absence: a user or department back in WeCom is not deleted.
        For a run from a file, WeCom is asked where it can answer; a department known
        only by a synthetic key, or a WeCom that cannot be read (why a file was used),
        leaves the file's word standing."""
        wecom = self.sync.wecom
        dept_id = department_id_of(op.key) if op.kind is Kind.DEPARTMENT else None
        if from_file and (not self.settings.wecom_readable
                          or dept_id is not None and is_synthetic(dept_id)):
            return False
        try:
            if op.kind is Kind.USER:
                await wecom.user_get(op.key)
            else:
                await wecom.department_get(int(op.key))
        except NotFoundError:
            return False
        except RestrictedError:
            if op.kind is Kind.USER:
                return any([row async for row in wecom.user_list_id()
                            if str(row["userid"]) == op.key])
            rows = await wecom.department_simplelist()
            return any(str(r.get("id")) == op.key for r in rows)
        except StopSync:
            raise
        except SyncError:
            if from_file:
                return False
            raise
        return True

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
            self._db(lambda c: links.record(c, direction="upstream", rows=rows,
                                            now=self._clock()))

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

    def __init__(self) -> None:
        self.ops: Sequence[Operation] = ()
        self.results: list[Outcome] = []
        self.in_flight: set[int] = set()
        self.settled: set[int] = set()
        self.earlier: list[Outcome] = []  # outcomes of the passes before this one
        self._states: dict[tuple[str, str], Any] = {}

    def begin(self, ops: Sequence[Operation], states: dict[tuple[str, str], Any]) -> None:
        self.ops, self._states = ops, states
        self.results = [unapplied(op) for op in ops]

    def carry(self, earlier: list[Outcome], ops: Sequence[Operation]) -> None:
        """Start another pass over ``ops`` (a re-plan after transient failures), keeping
        the earlier passes' outcomes for the record of an interruption."""
        self.earlier = _merge(self.earlier, earlier) if self.earlier else list(earlier)
        self.ops, self.results = ops, [unapplied(op) for op in ops]
        self.in_flight, self.settled = set(), set()

    def settle(self, index: int) -> None:
        self.in_flight.discard(index)
        self.settled.add(index)

    def links(self) -> list[LinkRow]:
        return written(self.earlier + [self.results[i] for i in self.settled], self._states)

    def interrupted(self, reason: str) -> tuple[RunStatus, list[dict[str, Any]], str]:
        """Status, items and error of a run stopped now. Settled operations keep their
        outcome; one cut off in flight may have reached Authing and counts as failed; one
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
                                       "reached Authing; the next run completes it"})
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


def _depths(departments: Sequence[WeComDepartment]) -> dict[str, int]:
    parents = {d.id: d.parent_id for d in departments}
    depth: dict[int, int] = {}

    def of(dept_id: int, seen: int = 0) -> int:
        if dept_id in depth:
            return depth[dept_id]
        parent = parents.get(dept_id)
        value = 0 if parent is None or seen > 32 else of(parent, seen + 1) + 1
        depth[dept_id] = value
        return value

    return {department_open_id(d): of(d) for d in parents}


def _phases(ops: Sequence[Operation], depth: dict[str, int]
            ) -> list[list[tuple[int, Operation]]]:
    """Groups that may run concurrently, in the order the planner requires: department
    upserts level by level, then users, then user removals, then department deletes one
    at a time in the planner's children-first order (gone from WeCom, their depth is only
    known to the planner)."""
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
