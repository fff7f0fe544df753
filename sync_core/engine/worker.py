"""The worker: claims inbox events, applies each entity once, settles the events.

Entities run concurrently (up to ``worker_concurrency``); events of one entity are claimed
together and in order (see ``store.queue``). Up to half as many entities again wait
claimed, so that a finished entity's slot is filled at once rather than after the next
database round trip (under load that round trip, not the entity, was what a slot waited
for); no more, since events of an entity claimed early miss being coalesced with its later
ones. Every claim
carries a lease that a heartbeat renews, so a crashed worker's events return to the queue;
claims not started when the worker stops are handed back. Outcomes:

- applied (or nothing to do) → ``done`` with a one-line summary;
- transient failure (an upstream outage: 5xx, 429, timeouts, connection errors) →
  ``failed`` with capped exponential backoff and jitter, never sooner than the upstream's
  Retry-After; it spends time, not attempts: the entity gives up only when its transient
  failures have lasted ``retry_window_hours``;
- a conflict that a re-plan resolves, a department not yet empty, refused credentials →
  ``failed`` with the same backoff, counted against ``worker_max_attempts``;
- a permanent error, or a spent budget → ``dead`` with a readable reason (replayable).
- waiting for a department that is not in the target yet and not known to be gone →
  ``failed`` with the same backoff, for as long as it takes (no budget);
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine

from sync_core import logs
from sync_core.directory.vocabulary import SYNCED_KINDS, Direction, Kind
from sync_core.engine.echo import claimed, written_by_opposite
from sync_core.engine.entity_sync import EntityResult, EntitySync
from sync_core.engine.ports import WriteIntents
from sync_core.engine.sync_now import SyncNow
from sync_core.errors import (
    ConflictError,
    PermanentError,
    StopSync,
    SyncError,
    TransientError,
    WaitingForDependency,
)
from sync_core.http.retry import backoff
from sync_core.metrics import Metrics
from sync_core.settings import Settings
from sync_core.store import links, queue
from sync_core.store.db import describe
from sync_core.store.links import LinkRow
from sync_core.store.models import AttemptOutcome, EventSource, utcnow

log = logging.getLogger(__name__)

# How long a settlement may wait for more finished entities while claims wait for slots.
SETTLE_LINGER = 0.01  # seconds
# Batch-import jobs that rewrite the directory behind the callbacks' back.
RECONCILE_JOB_TYPES = frozenset({"sync_user", "replace_user", "replace_party"})


class Settle(StrEnum):
    """What becomes of a claim's events (the inbox statuses they move to)."""

    DONE = "done"
    RETRY = "retry"  # failed, due again after a backoff
    DEAD = "dead"  # kept for an operator to replay


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Settle
    text: str
    retry_after: float | None = None
    links: tuple[LinkRow, ...] = ()  # what was written, recorded with the settlement
    transient: bool = False  # a retry caused only by transient failures (time budget)
    waiting: bool = False  # for a dependency not known to be gone: no budget at all
    direction: Direction | None = None  # of the links
    # The verdicts of the other directions of one event (an operator's sync-now), whose
    # links are recorded with this one's.
    others: tuple[Verdict, ...] = ()


class Worker:
    def __init__(self, settings: Settings, engine: Engine,
                 directions: Mapping[str, EntitySync], metrics: Metrics, *,
                 wake: asyncio.Event | None = None,
                 owner: str | None = None, clock: Callable[[], datetime] = utcnow,
                 on_batch_job: Callable[[dict[str, Any]], Awaitable[str]] | None = None,
                 sync_now: SyncNow | None = None) -> None:
        """``sync_now``: how an operator's event about one object is applied (every
        running direction); without it, by the direction ``directions`` maps ops to."""
        self.settings = settings
        self.engine = engine
        # Inbox event source → the direction that applies its events.
        self.directions = dict(directions)
        self.metrics = metrics
        self.wake = wake or asyncio.Event()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._clock = clock
        self._on_batch_job = on_batch_job
        self._sync_now = sync_now
        self._in_flight: dict[asyncio.Task[None], queue.Claim] = {}
        self._ready: deque[queue.Claim] = deque()  # claimed, waiting for a free slot
        # When the lease of each waiting claim ends, as last set (claim, renewal).
        self._lease_ends: dict[tuple[int, ...], datetime] = {}
        self._releasing: list[queue.Claim] = []  # claimed, never started: handed back
        self._backlog = False  # the last claim found as many due entities as it asked for
        self._stop = asyncio.Event()  # set: start nothing more (the loop's stop, in run)
        self._finished: list[tuple[queue.Claim, Verdict]] = []  # applied, not yet settled
        # (source, kind, key) → what the opposite direction last wrote there, read with
        # the claim (engine.echo); taken by the entity's sync.
        # With each, when it was read (a write of the opposite direction's recorded
        # later was made since).
        self._echoes: dict[tuple[str, str, str], tuple[frozenset[str], datetime]] = {}
        self._db_failures = 0
        self._lease = timedelta(seconds=settings.worker_lease_seconds)
        self._identities = KeyLocks()
        self.ready = False

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; then finish what is in flight (graceful shutdown)."""
        self._stop = stop
        if not await self._bootstrap(stop):
            return
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="worker-heartbeat")
        try:
            while not stop.is_set():
                await self._linger_before_settling(stop)
                claimed = await self._cycle(stop)
                if not claimed:
                    await self._idle(stop)
        finally:
            # What waits claimed goes back now, not after the drain: another worker (the
            # one replacing this one) may take it meanwhile.
            self._release(list(self._ready))
            self._ready.clear()
            if self._releasing:
                await self._cycle(stop, claiming=False)
            if self._in_flight:
                log.info("worker stopping: finishing %d entities", len(self._in_flight))
                await asyncio.wait(list(self._in_flight), timeout=self._lease.total_seconds())
            await self._last_settlements(stop)
            heartbeat.cancel()

    async def _bootstrap(self, stop: asyncio.Event) -> bool:
        delay = 1.0
        while not self.ready:
            try:
                for sync in {id(s): s for s in self.directions.values()}.values():
                    await sync.prepare()
                self.ready = True
            except SyncError as exc:
                log.error("target bootstrap failed (will retry in %.0f s): %s", delay, exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return False
                except TimeoutError:
                    delay = min(delay * 2, 60.0)
        return True

    async def _cycle(self, stop: asyncio.Event, *, claiming: bool = True) -> int:
        """One transaction: settle the entities that finished, hand back the claims that
        will not start, then claim up to the hold limit (the slots, and half as many again
        waiting). Under load one round trip serves several entities; a database outage
        keeps the settlements and retries them with backoff (the claims' leases guard
        them)."""
        settling, self._finished = self._finished, []
        releasing, self._releasing = self._releasing, []
        held = len(self._in_flight) + len(self._ready)
        limit = self.settings.worker_concurrency + (self.settings.worker_concurrency + 1) // 2
        free = max(0, limit - held) if claiming else 0
        if not settling and not releasing and not free:
            return 0
        leased_until = self._clock() + self._lease  # no later than the claim's own
        try:
            claims = await asyncio.to_thread(self._settle_and_claim, settling, free, releasing)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
            self._finished[:0] = settling
            self._releasing[:0] = releasing
            self._db_failures += 1
            delay = min(60.0, 2.0 ** self._db_failures)
            log.error("worker: database step failed (%s); %d settlement(s) kept, retrying "
                      "in %.0f s", describe(exc), len(settling), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            return 0
        self._db_failures = 0
        for claim, verdict in settling:
            self._report(claim, verdict)
        self._backlog = bool(free) and len(claims) == free
        self._ready.extend(claims)
        self._lease_ends.update((claim.ids, leased_until) for claim in claims)
        self._start_ready()
        return len(claims)

    def _start_ready(self) -> None:
        """Start claimed entities, oldest first, while a slot is free. A claim whose lease
        could not be renewed (ending within a heartbeat) is handed back instead: another
        worker may hold its entity by now."""
        margin = self._lease / 3
        while self._ready and not self._stop.is_set() \
                and len(self._in_flight) < self.settings.worker_concurrency:
            claim = self._ready.popleft()
            ends = self._lease_ends.pop(claim.ids, None)
            if ends is not None and ends - self._clock() < margin:
                log.warning("worker: the lease on %s lapsed while it waited; handed back",
                            _entity(claim))
                self._release([claim])
                continue
            try:
                with logs.bind(event_id=_ids(claim), entity=_entity(claim)):
                    task = asyncio.create_task(self._process(claim))
            except Exception:  # noqa: BLE001 - runs in a done-callback: keep the claim
                log.exception("worker: could not start %s; it waits", _entity(claim))
                self._ready.appendleft(claim)
                if ends is not None:
                    self._lease_ends[claim.ids] = ends
                return
            self._in_flight[task] = claim
            task.add_done_callback(self._slot_freed)

    def _release(self, claims: list[queue.Claim]) -> None:
        """Hand claims back with the next cycle (only events still leased to this worker
        change: one that lapsed and was taken by another is left to it)."""
        for claim in claims:
            self._lease_ends.pop(claim.ids, None)
            # The echo digest read with the claim is stale by the next claim of the entity.
            self._echoes.pop((claim.source, claim.entity_kind, claim.entity_key), None)
        self._releasing += claims
        self.wake.set()

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task)
        self._start_ready()

    async def _last_settlements(self, stop: asyncio.Event, attempts: int = 3) -> None:
        """At shutdown: settle what finished, claiming nothing. Whatever cannot be settled
        keeps its lease until it lapses, and is then claimed and re-planned (with no writes
        left to do)."""
        for attempt in range(attempts):
            if not self._finished and not self._releasing:
                return
            if attempt:
                await asyncio.sleep(0.5 * attempt)  # ``stop`` is set: _cycle does not wait
            await self._cycle(stop, claiming=False)
        if self._finished or self._releasing:
            log.error("worker stopped with %d entities unsettled; their events return to the "
                      "queue when the lease lapses", len(self._finished) + len(self._releasing))

    async def _linger_before_settling(self, stop: asyncio.Event) -> None:
        """With a backlog (the last claim got all it asked for) and claims waiting for
        slots, settling can wait a moment (``SETTLE_LINGER``) for more entities to finish
        and share its round trip, the slots being refilled from the waiting claims
        meanwhile; not once half the slots have finished (enough to share it). Otherwise a
        wait would be latency, not throughput, and the settlement goes at once."""
        if self._backlog and self._ready \
                and 0 < len(self._finished) < self.settings.worker_concurrency // 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SETTLE_LINGER)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Until there is work: an event stored (wake), an entity finished, stop, or the
        poll interval (events retried after a backoff are found by polling)."""
        if self._finished:
            return  # entities that finished while the last cycle ran: settle them now
        signals: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()),
                                              asyncio.ensure_future(self.wake.wait())]
        await asyncio.wait([*signals, *self._in_flight], timeout=self.settings.worker_poll_seconds,
                           return_when=asyncio.FIRST_COMPLETED)
        for signal in signals:
            signal.cancel()
        self.wake.clear()

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        period = self._lease.total_seconds() / 3
        while not stop.is_set():
            await asyncio.sleep(period)
            claims = [*self._in_flight.values(), *self._ready, *self._releasing,
                      *(claim for claim, _ in self._finished)]
            ids = tuple(i for claim in claims for i in claim.ids)
            if not ids:
                continue
            try:
                until, renewed = await asyncio.to_thread(self._renew, ids)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("worker: renewing %d leases failed (%s)", len(ids),
                            type(exc).__name__)
                continue
            for claim in claims:
                if claim.ids in self._lease_ends:  # waiting: start it only while it is ours
                    lost = not renewed.issuperset(claim.ids)
                    self._lease_ends[claim.ids] = until - self._lease if lost else until

    # -- one entity ---------------------------------------------------------------------

    async def _process(self, claim: queue.Claim) -> None:
        queue.HELD.set(claim.ids)  # this task's own events are not "open" to its checks
        try:
            verdict = await self._decide(claim)
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the event
            log.exception("worker bug on %s:%s", claim.entity_kind, claim.entity_key)
            verdict = Verdict(Settle.RETRY, f"internal error: {type(exc).__name__}: {exc}")
        self._finished.append((claim, self._budget(claim, verdict)))  # settled next cycle

    def _budget(self, claim: queue.Claim, verdict: Verdict) -> Verdict:
        """A retry becomes ``dead`` once its budget is spent: transient failures spend the
        time window since the entity's first one, other retries spend attempts."""
        if verdict.status is not Settle.RETRY or verdict.waiting:
            return verdict
        if verdict.transient:
            since = claim.transient_since
            window = timedelta(hours=self.settings.retry_window_hours)
            if since is not None and self._clock() - _aware(since) >= window:
                return replace(verdict, status=Settle.DEAD, text=(
                    f"gave up after transient failures lasting more than "
                    f"{_hours(window)} (retry_window_hours): {verdict.text}"))
            return verdict
        if claim.counted_attempts >= self.settings.worker_max_attempts:
            return replace(verdict, status=Settle.DEAD, text=(
                f"gave up after {claim.counted_attempts} attempts: {verdict.text}"))
        return verdict

    def _report(self, claim: queue.Claim, verdict: Verdict) -> None:
        log.info("%s %s:%s → %s: %s", claim.source, claim.entity_kind, claim.entity_key,
                 verdict.status, verdict.text,
                 extra={"event_id": _ids(claim), "entity": _entity(claim)})
        self.metrics.worker_events.labels(claim.source, claim.entity_kind,
                                          verdict.status).inc(len(claim.ids))
        if verdict.status is Settle.DONE:
            received = min(_aware(e.received_at) for e in claim.events)
            self.metrics.apply_seconds.labels(claim.entity_kind).observe(
                (self._clock() - received).total_seconds())

    async def _decide(self, claim: queue.Claim) -> Verdict:
        payloads = [e.payload for e in claim.events]
        direction = self.directions[claim.source].ports.direction \
            if claim.source in self.directions else None
        try:
            if self._sync_now is not None and claim.source == EventSource.OPS \
                    and claim.entity_kind in SYNCED_KINDS:
                return await self._run_sync_now(self._sync_now, claim, payloads)
            result = await self._dispatch(claim, payloads)
        except TransientError as exc:
            return Verdict(Settle.RETRY, _reason(exc), exc.retry_after, transient=True)
        except StopSync as exc:
            # Wrong credentials or a refused read: every entity would fail alike; keep the
            # events and retry slowly rather than bury them all in the dead letters.
            return Verdict(Settle.RETRY, _reason(exc), 60.0)
        except PermanentError as exc:
            return Verdict(Settle.DEAD, _reason(exc))
        return _verdict(result, direction)

    async def _run_sync_now(self, sync_now: SyncNow, claim: queue.Claim,
                            payloads: list[dict[str, Any]]) -> Verdict:
        kind = Kind(claim.entity_kind)
        read = self._echoes.pop((claim.source, kind, claim.entity_key), None)
        echo_of = (read[0] or None) if read is not None else None
        async with self._identities.hold({claim.entity_key}):
            steps = await sync_now.run(kind, claim.entity_key, payloads, echo_of=echo_of)
        return combine([_verdict(step.result, step.direction) for step in steps])

    async def _dispatch(self, claim: queue.Claim,
                        payloads: list[dict[str, Any]]) -> EntityResult | str:
        kind = claim.entity_kind
        sync = self.directions.get(claim.source)
        if sync is None:
            raise PermanentError(f"no handler for {claim.source} events")
        found = self._echoes.pop((claim.source, kind, claim.entity_key), None)
        if found is None and kind in SYNCED_KINDS and self._holds_writes(claim.source):
            # The claim's read failed: its writes cannot go unheld, so it is read now.
            at = self._clock()
            found = (await asyncio.to_thread(self._read_echo, sync, Kind(kind),
                                             claim.entity_key), at)
        echo_of = (found[0] or None) if found is not None else None
        with claimed(kind, claim.entity_key, *found) if found is not None \
                else contextlib.nullcontext():
            if kind == Kind.USER:
                # The two keys of a rename are two entities to the queue, but one person:
                # their events never run side by side (in this process).
                renamed_to = sync.source.hints(Kind.USER, payloads).renamed_to
                keys = {claim.entity_key, *([renamed_to] if renamed_to else [])}
                async with self._identities.hold(keys):
                    return await sync.sync_user(claim.entity_key, payloads, echo_of=echo_of)
            if kind == Kind.DEPARTMENT:
                return await sync.sync_department(claim.entity_key, payloads,
                                                  echo_of=echo_of)
        if kind == Kind.TAG:
            self.metrics.ignored.labels("update_tag").inc(len(payloads))
            return f"update_tag stored and ignored ({len(payloads)} event(s))"
        if kind == Kind.JOB:
            return await self._batch_job(payloads[-1])
        types = sorted({str(p.get("change_type")) for p in payloads})
        for event_type in types:
            self.metrics.ignored.labels(event_type).inc()
        return f"ignored: {', '.join(types)} is not a directory change"

    async def _batch_job(self, payload: dict[str, Any]) -> str:
        job_type, job_id = payload.get("job_type"), payload.get("job_id")
        # A batch import, or a tree-wide change in the other platform (its own event name):
        # either rewrote the source behind the per-entity events' back.
        if job_type in RECONCILE_JOB_TYPES or payload.get("eventName") is not None:
            if self._on_batch_job is not None:
                return await self._on_batch_job(payload)
            return f"recorded {job_type} job {job_id}: a full reconcile is advised"
        self.metrics.ignored.labels(f"batch_job_result:{job_type}").inc()
        return f"recorded {job_type} job {job_id}"

    # -- database steps (run in a thread) ----------------------------------------------

    def _settle_and_claim(self, settling: list[tuple[queue.Claim, Verdict]], limit: int,
                          releasing: Sequence[queue.Claim] = ()) -> list[queue.Claim]:
        """One connection: the settlements, the claims handed back and the claim in one
        transaction, then the echo read of the claimed entities."""
        now = self._clock()
        with self.engine.connect() as conn:
            with conn.begin():
                self._settle(conn, settling, now)
                if releasing:
                    queue.release(conn, owner=self.owner,
                                  ids=tuple(i for claim in releasing for i in claim.ids))
                if not limit:
                    return []
                claims = queue.claim(conn, owner=self.owner, now=now, lease=self._lease,
                                     max_entities=limit, sources=tuple(self.directions))
            self._read_echoes(conn, claims, now)
        return claims

    def _read_echoes(self, conn: Connection, claims: list[queue.Claim],
                     now: datetime) -> None:
        """Before any of them is planned: what the opposite direction last wrote to the
        claimed entities, one statement per direction (engine.echo). Read after the claim
        has committed, so that a failure only costs the check: the entities are planned as
        usual."""
        wanted = {source: [(c.entity_kind, c.entity_key) for c in claims
                           if c.source == source and c.entity_kind in SYNCED_KINDS]
                  for source in self.directions if self._uses_echoes(source)}
        if not any(wanted.values()):
            return
        try:
            with conn.begin():
                for source, entities in wanted.items():
                    if entities:
                        direction = self.directions[source].ports.direction
                        found = written_by_opposite(conn, direction, entities)
                        # Read, even when nothing was written: the attempt's writes are
                        # held to it (engine.echo.claimed).
                        self._echoes.update({
                            (source, kind, key): (found.get((kind, key), frozenset()), now)
                            for kind, key in entities})
        except Exception as exc:  # noqa: BLE001 - an echo missed costs reads, never writes
            log.warning("worker: echo check skipped (%s)", describe(exc))

    def _uses_echoes(self, source: str) -> bool:
        """Whether the entity syncs of ``source`` take the echo read: not a direction that
        plans every echo against its target (``trust_echoes=False``), which would throw it
        away, unless its writer holds its writes to the claim (``WriteIntents``:
        ``engine.echo.claimed``) and the opposite direction runs here; an operator's
        sync-now (every direction) always takes it."""
        sync = self.directions[source]
        if source == EventSource.OPS or sync.trust_echoes:
            return True
        # Operator events map to a direction whatever runs here (downstream alone too):
        # the directions of the platforms' own events say whether both run.
        both = len({id(other) for src, other in self.directions.items()
                    if src != EventSource.OPS}) > 1
        return both and isinstance(sync.ports.writer, WriteIntents)

    def _holds_writes(self, source: str) -> bool:
        """Whether the writes of ``source``'s entity syncs are held to the claim's echo
        read (not only helped by it): a failed read must then not leave them unheld."""
        return source != EventSource.OPS and not self.directions[source].trust_echoes \
            and self._uses_echoes(source)

    def _read_echo(self, sync: EntitySync, kind: Kind, key: str) -> frozenset[str]:
        """``_read_echoes`` for one entity, on its own connection; TransientError when the
        database does not answer (the entity is then retried)."""
        try:
            with self.engine.connect() as conn:
                found = written_by_opposite(conn, sync.ports.direction, [(kind, key)])
        except Exception as exc:  # noqa: BLE001 - translated: the attempt waits
            raise TransientError(f"the echo digest could not be read: {describe(exc)}",
                                 remote="database", maybe_applied=False) from exc
        return found.get((kind, key), frozenset())

    def _renew(self, ids: tuple[int, ...]) -> tuple[datetime, frozenset[int]]:
        """Extend this worker's leases on ``ids``: when they now end, and which of them
        are still this worker's."""
        until = self._clock() + self._lease
        with self.engine.begin() as conn:
            return until, queue.renew(conn, owner=self.owner, ids=ids, until=until)

    def _settle(self, conn: Connection, settling: list[tuple[queue.Claim, Verdict]],
                now: datetime) -> None:
        """What was written (whatever the verdict), then every claim's events, all claims
        at once."""
        written: dict[Direction, dict[tuple[str, str], LinkRow]] = {}
        for _, verdict in settling:
            for part in (verdict, *verdict.others):  # a sync-now's other directions
                if part.links and part.direction is not None:  # the later write wins
                    written.setdefault(part.direction, {}).update(
                        ((row.kind, row.source_key), row) for row in part.links)
        for direction, rows in written.items():
            links.record(conn, direction=direction, rows=rows.values(), now=now)
        queue.settle(conn, owner=self.owner, now=now,
                     settlements=[self._settlement(c, v, now) for c, v in settling])

    def _settlement(self, claim: queue.Claim, verdict: Verdict,
                    now: datetime) -> queue.Settlement:
        if verdict.status is Settle.DONE:
            return queue.Settlement(claim.ids, AttemptOutcome.DONE, verdict.text)
        if verdict.status is Settle.DEAD:
            return queue.Settlement(claim.ids, AttemptOutcome.DEAD, verdict.text)
        delay = backoff(claim.attempts, self.settings.worker_backoff_cap_seconds,
                        verdict.retry_after)
        since = (claim.transient_since or now) if verdict.transient else None
        return queue.Settlement(claim.ids, AttemptOutcome.RETRY, verdict.text,
                                now + timedelta(seconds=delay), since)


class KeyLocks:
    """Exclusive in-process locks on *sets* of keys (case-insensitive, as the source
    compares user keys), taken in sorted order so that two holders cannot deadlock."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted({k.lower() for k in keys})
        self._holders.update(ordered)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for key in ordered:
                    await stack.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
                yield
        finally:
            self._holders.subtract(ordered)
            for key in ordered:
                if self._holders[key] <= 0:
                    del self._holders[key]
                    self._locks.pop(key, None)


def judge(result: EntityResult) -> Verdict:
    """The verdict on one entity sync (pure): failures that may pass (transient, a conflict
    a re-plan resolves, refused credentials) and blocked skips are retried, a wait for a
    dependency with no budget at all; other failures and conflicts are dead; the rest is
    done. The writes made are recorded in every case."""
    summary, written = result.summary(), tuple(result.links())
    failures = result.failures
    if failures:
        errors = [o.error for o in failures]
        if all(isinstance(e, TransientError | ConflictError | StopSync) for e in errors):
            hint = max((e.retry_after or 0 for e in errors if isinstance(e, TransientError)),
                       default=0) or None
            transient = all(isinstance(e, TransientError) for e in errors)
            waiting = all(isinstance(e, WaitingForDependency) for e in errors)
            return Verdict(Settle.RETRY, summary, hint, written, transient, waiting)
        return Verdict(Settle.DEAD, summary, links=written)
    if result.conflicts or result.invalid:
        return Verdict(Settle.DEAD, summary, links=written)
    if result.blocked:
        return Verdict(Settle.RETRY, summary, links=written)
    return Verdict(Settle.DONE, summary, links=written)


_SEVERITY = {Settle.DONE: 0, Settle.RETRY: 1, Settle.DEAD: 2}


def _verdict(result: EntityResult | str, direction: Direction | None) -> Verdict:
    if isinstance(result, str):
        return Verdict(Settle.DONE, result, direction=direction)
    return replace(judge(result), direction=direction)


def combine(verdicts: list[Verdict]) -> Verdict:
    """One verdict for the directions one event was applied in, in order: the worst
    status settles the event, its text says what each direction did, and every
    direction's writes are recorded."""
    worst = max(verdicts, key=lambda v: _SEVERITY[v.status])
    text = "; ".join(f"{v.direction}: {v.text}" for v in verdicts)
    return replace(worst, text=text, others=tuple(v for v in verdicts if v is not worst))


def _ids(claim: queue.Claim) -> int | str:
    """The log lines' ``event_id``: the event, or the events a claim coalesced."""
    ids = claim.ids
    return ids[0] if len(ids) == 1 else ",".join(map(str, ids))


def _entity(claim: queue.Claim) -> str:
    return f"{claim.entity_kind}:{claim.entity_key}"


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{window.total_seconds():g} s"


def _reason(exc: SyncError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
