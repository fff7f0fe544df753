"""The worker: claims inbox events, applies each entity once, settles the events.

Entities run concurrently (up to ``worker_concurrency``); events of one entity are claimed
together and in order (see ``store.queue``). Every claim carries a lease that a heartbeat
renews, so a crashed worker's events return to the queue. Outcomes:

- applied (or nothing to do) → ``done`` with a one-line summary;
- transient failure (an upstream outage: 5xx, 429, timeouts, connection errors) →
  ``failed`` with capped exponential backoff and jitter, never sooner than the upstream's
  Retry-After; it spends time, not attempts: the entity gives up only when its transient
  failures have lasted ``retry_window_hours``;
- a conflict that a re-plan resolves, a department not yet empty, refused credentials →
  ``failed`` with the same backoff, counted against ``worker_max_attempts``;
- a permanent error, or a spent budget → ``dead`` with a readable reason (replayable).
- waiting for a department that is not in Authing yet and not known to be gone →
  ``failed`` with the same backoff, for as long as it takes (no budget);
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from . import logs
from .errors import (
    ConflictError,
    PermanentError,
    StopSync,
    SyncError,
    TransientError,
    WaitingForDependency,
)
from .http_retry import backoff
from .metrics import Metrics
from .settings import Settings
from .store import links, queue
from .store.db import describe
from .store.links import LinkRow
from .store.models import EventSource, utcnow
from .upstream_sync import EntityResult, UpstreamSync
from .wecom_events import EntityKind

log = logging.getLogger(__name__)

# Batch-import jobs that rewrite the directory behind the callbacks' back.
RECONCILE_JOB_TYPES = frozenset({"sync_user", "replace_user", "replace_party"})


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # done | retry | dead
    text: str
    retry_after: float | None = None
    links: tuple[LinkRow, ...] = ()  # what was written, recorded with the settlement
    transient: bool = False  # a retry caused only by transient failures (time budget)
    waiting: bool = False  # for a dependency not known to be gone: no budget at all


class Worker:
    def __init__(self, settings: Settings, engine: Engine, upstream: UpstreamSync,
                 metrics: Metrics, *, wake: asyncio.Event | None = None,
                 owner: str | None = None, clock: Callable[[], datetime] = utcnow,
                 on_batch_job: Callable[[dict[str, Any]], Awaitable[str]] | None = None,
                 ) -> None:
        self.settings = settings
        self.engine = engine
        self.upstream = upstream
        self.metrics = metrics
        self.wake = wake or asyncio.Event()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._clock = clock
        self._on_batch_job = on_batch_job
        self._in_flight: dict[asyncio.Task[None], queue.Claim] = {}
        self._finished: list[tuple[queue.Claim, Verdict]] = []  # applied, not yet settled
        self._db_failures = 0
        self._lease = timedelta(seconds=settings.worker_lease_seconds)
        self._identities = KeyLocks()
        self.ready = False

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; then finish what is in flight (graceful shutdown)."""
        if not await self._bootstrap(stop):
            return
        heartbeat = asyncio.create_task(self._heartbeat(stop), name="worker-heartbeat")
        try:
            while not stop.is_set():
                claimed = await self._cycle(stop)
                if not claimed:
                    await self._idle(stop)
        finally:
            if self._in_flight:
                log.info("worker stopping: finishing %d entities", len(self._in_flight))
                await asyncio.wait(list(self._in_flight), timeout=self._lease.total_seconds())
            await self._last_settlements(stop)
            heartbeat.cancel()

    async def _bootstrap(self, stop: asyncio.Event) -> bool:
        delay = 1.0
        while not self.ready:
            try:
                await self.upstream.bootstrap()
                self.ready = True
            except SyncError as exc:
                log.error("Authing bootstrap failed (will retry in %.0f s): %s", delay, exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return False
                except TimeoutError:
                    delay = min(delay * 2, 60.0)
        return True

    async def _cycle(self, stop: asyncio.Event, *, claiming: bool = True) -> int:
        """One transaction: settle the entities that finished, then claim into the free
        slots. Under load one round trip serves several entities; a database outage keeps
        the settlements and retries them with backoff (the claims' leases guard them)."""
        settling, self._finished = self._finished, []
        free = max(0, self.settings.worker_concurrency - len(self._in_flight)) if claiming else 0
        if not settling and not free:
            return 0
        try:
            claims = await asyncio.to_thread(self._settle_and_claim, settling, free)
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database outage
            self._finished[:0] = settling
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
        for claim in claims:
            with logs.bind(event_id=_ids(claim), entity=_entity(claim)):
                task = asyncio.create_task(self._process(claim))
            self._in_flight[task] = claim
            task.add_done_callback(self._in_flight.pop)
        return len(claims)

    async def _last_settlements(self, stop: asyncio.Event, attempts: int = 3) -> None:
        """At shutdown: settle what finished, claiming nothing. Whatever cannot be settled
        keeps its lease until it lapses, and is then claimed and re-planned (with no writes
        left to do)."""
        for attempt in range(attempts):
            if not self._finished:
                return
            if attempt:
                await asyncio.sleep(0.5 * attempt)  # ``stop`` is set: _cycle does not wait
            await self._cycle(stop, claiming=False)
        if self._finished:
            log.error("worker stopped with %d entities unsettled; their events return to the "
                      "queue when the lease lapses", len(self._finished))

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
            claims = [*self._in_flight.values(), *(claim for claim, _ in self._finished)]
            ids = tuple(i for claim in claims for i in claim.ids)
            if not ids:
                continue
            try:
                await asyncio.to_thread(self._renew, ids)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("worker: renewing %d leases failed (%s)", len(ids),
                            type(exc).__name__)

    # -- one entity ---------------------------------------------------------------------

    async def _process(self, claim: queue.Claim) -> None:
        try:
            verdict = await self._decide(claim)
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the event
            log.exception("worker bug on %s:%s", claim.entity_kind, claim.entity_key)
            verdict = Verdict("retry", f"internal error: {type(exc).__name__}: {exc}")
        self._finished.append((claim, self._budget(claim, verdict)))  # settled next cycle

    def _budget(self, claim: queue.Claim, verdict: Verdict) -> Verdict:
        """A retry becomes ``dead`` once its budget is spent: transient failures spend the
        time window since the entity's first one, other retries spend attempts."""
        if verdict.status != "retry" or verdict.waiting:
            return verdict
        if verdict.transient:
            since = claim.transient_since
            window = timedelta(hours=self.settings.retry_window_hours)
            if since is not None and self._clock() - _aware(since) >= window:
                return replace(verdict, status="dead", text=(
                    f"gave up after transient failures lasting more than "
                    f"{_hours(window)} (retry_window_hours): {verdict.text}"))
            return verdict
        if claim.counted_attempts >= self.settings.worker_max_attempts:
            return replace(verdict, status="dead", text=(
                f"gave up after {claim.counted_attempts} attempts: {verdict.text}"))
        return verdict

    def _report(self, claim: queue.Claim, verdict: Verdict) -> None:
        log.info("%s %s:%s → %s: %s", claim.source, claim.entity_kind, claim.entity_key,
                 verdict.status, verdict.text,
                 extra={"event_id": _ids(claim), "entity": _entity(claim)})
        self.metrics.worker_events.labels(claim.source, claim.entity_kind,
                                          verdict.status).inc(len(claim.ids))
        if verdict.status == "done":
            received = min(_aware(e.received_at) for e in claim.events)
            self.metrics.apply_seconds.labels(claim.entity_kind).observe(
                (self._clock() - received).total_seconds())

    async def _decide(self, claim: queue.Claim) -> Verdict:
        payloads = [e.payload for e in claim.events]
        try:
            result = await self._dispatch(claim, payloads)
        except TransientError as exc:
            return Verdict("retry", _reason(exc), exc.retry_after, transient=True)
        except StopSync as exc:
            # Wrong credentials or a refused read: every entity would fail alike; keep the
            # events and retry slowly rather than bury them all in the dead letters.
            return Verdict("retry", _reason(exc), 60.0)
        except PermanentError as exc:
            return Verdict("dead", _reason(exc))
        if isinstance(result, str):
            return Verdict("done", result)
        return _judge(result)

    async def _dispatch(self, claim: queue.Claim,
                        payloads: list[dict[str, Any]]) -> EntityResult | str:
        kind = claim.entity_kind
        if claim.source not in (EventSource.WECOM.value, EventSource.OPS.value):
            raise PermanentError(f"no handler for {claim.source} events")
        if kind == EntityKind.USER:
            # The two userids of a rename are two entities to the queue, but one member:
            # their events never run side by side (in this process).
            moves = {str(p["new_user_id"]) for p in payloads if p.get("new_user_id")}
            async with self._identities.hold({claim.entity_key, *moves}):
                return await self.upstream.sync_user(claim.entity_key, payloads)
        if kind == EntityKind.DEPARTMENT:
            return await self.upstream.sync_department(claim.entity_key, payloads)
        if kind == EntityKind.TAG:
            self.metrics.ignored.labels("update_tag").inc(len(payloads))
            return f"update_tag stored and ignored ({len(payloads)} event(s))"
        if kind == EntityKind.JOB:
            return await self._batch_job(payloads[-1])
        types = sorted({str(p.get("change_type")) for p in payloads})
        for event_type in types:
            self.metrics.ignored.labels(event_type).inc()
        return f"ignored: {', '.join(types)} is not a directory change"

    async def _batch_job(self, payload: dict[str, Any]) -> str:
        job_type, job_id = payload.get("job_type"), payload.get("job_id")
        if job_type in RECONCILE_JOB_TYPES:
            if self._on_batch_job is not None:
                return await self._on_batch_job(payload)
            return f"recorded {job_type} job {job_id}: a full reconcile is advised"
        self.metrics.ignored.labels(f"batch_job_result:{job_type}").inc()
        return f"recorded {job_type} job {job_id}"

    # -- database steps (run in a thread) ----------------------------------------------

    def _settle_and_claim(self, settling: list[tuple[queue.Claim, Verdict]],
                          limit: int) -> list[queue.Claim]:
        now = self._clock()
        with self.engine.begin() as conn:
            for claim, verdict in settling:
                self._settle(conn, claim, verdict, now)
            if not limit:
                return []
            return queue.claim(conn, owner=self.owner, now=now, lease=self._lease,
                               max_entities=limit,
                               sources=(EventSource.WECOM.value, EventSource.OPS.value))

    def _renew(self, ids: tuple[int, ...]) -> None:
        with self.engine.begin() as conn:
            queue.renew(conn, owner=self.owner, ids=ids, until=self._clock() + self._lease)

    def _settle(self, conn: Connection, claim: queue.Claim, verdict: Verdict,
                now: datetime) -> None:
        if verdict.links:  # whatever the verdict: the writes happened
            links.record(conn, direction="upstream", rows=verdict.links, now=now)
        if verdict.status == "done":
            queue.complete(conn, owner=self.owner, ids=claim.ids, now=now,
                           outcome=verdict.text)
        elif verdict.status == "dead":
            queue.fail(conn, owner=self.owner, ids=claim.ids, now=now, error=verdict.text,
                       retry_at=None)
        else:
            delay = backoff(claim.attempts, self.settings.worker_backoff_cap_seconds,
                            verdict.retry_after)
            since = (claim.transient_since or now) if verdict.transient else None
            queue.fail(conn, owner=self.owner, ids=claim.ids, now=now, error=verdict.text,
                       retry_at=now + timedelta(seconds=delay), transient_since=since)


class KeyLocks:
    """Exclusive in-process locks on *sets* of keys (WeCom userids, case-insensitive, as
    WeCom compares them), taken in sorted order so that two holders cannot deadlock."""

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


def _judge(result: EntityResult) -> Verdict:
    summary, written = result.summary(), tuple(result.links())
    failures = result.failures
    if failures:
        errors = [o.error for o in failures]
        if all(isinstance(e, TransientError | ConflictError | StopSync) for e in errors):
            hint = max((e.retry_after or 0 for e in errors if isinstance(e, TransientError)),
                       default=0) or None
            transient = all(isinstance(e, TransientError) for e in errors)
            waiting = all(isinstance(e, WaitingForDependency) for e in errors)
            return Verdict("retry", summary, hint, written, transient, waiting)
        return Verdict("dead", summary, links=written)
    if result.conflicts:
        return Verdict("dead", summary, links=written)
    if result.blocked:
        return Verdict("retry", summary, links=written)
    return Verdict("done", summary, links=written)


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
