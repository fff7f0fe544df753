"""Group commit for the inbox: many concurrent callbacks, one transaction.

Each request awaits ``submit()``, which resolves only after the transaction holding its
event has committed, so ``success`` is never sent for an event that could still be lost.
Requests that arrive while a commit is in flight are batched into the next one: under load
the cost of a commit (fsync) is shared, at low load a lone event commits at once. The
writer keeps its one connection between batches (a checkout is a ping, a round trip per
batch); a connection the server dropped is replaced and the batch sent once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..logs import LogThrottle
from .db import describe, is_unavailable
from .inbox import NewEvent, insert_new

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    duplicate: bool


class WriterClosed(RuntimeError):
    """The writer is shutting down; the caller must answer non-2xx so WeCom retries."""


class InboxWriter:
    def __init__(self, engine: Engine, *, batch_max: int = 256, linger_ms: float = 0.0) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._linger = linger_ms / 1000.0
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[Stored]]] = asyncio.Queue()
        # One thread: SQLite allows one writer anyway, and on PostgreSQL one connection
        # committing batches beats many committing singly.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._conn: Connection | None = None  # used by the writer thread only
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._throttle = LogThrottle(log)
        self.batches = 0
        self.events = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def submit(self, event: NewEvent) -> Stored:
        if self._closing or self._task is None:
            raise WriterClosed("inbox writer is not running")
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, future))
        return await future

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)
        self._drop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            if self._linger:
                await asyncio.sleep(self._linger)
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._pool, self._write, batch)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                # An outage is reported by whoever answers the waiters; anything else (a
                # bug, a row the database refused) is said here, without SQL or data.
                if not is_unavailable(exc):
                    self._throttle.log(logging.ERROR, type(exc).__name__,
                                       "inbox write failed for %d event(s): %s",
                                       len(batch), describe(exc))
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                self._queue.task_done()

    def _write(self, batch: Sequence[tuple[NewEvent, asyncio.Future[Stored]]]
               ) -> list[Stored | BaseException]:
        events = [event for event, _ in batch]
        try:
            fresh = self._commit(events)
        except Exception:
            if len(events) == 1:
                raise
            # One bad row must not sink its neighbours: retry each on its own.
            out: list[Stored | BaseException] = []
            for event in events:
                try:
                    out.append(self._mark(event, self._commit([event])))
                except Exception as exc:  # noqa: BLE001
                    out.append(exc)
            return out
        self.batches += 1
        self.events += len(events)
        return [self._mark(event, fresh) for event in events]

    def _commit(self, events: Sequence[NewEvent]) -> set[tuple[str, str]]:
        """One transaction on the kept connection; once more on a new one when the server
        had dropped it (a restart, an idle timeout). A batch whose commit was cut off may
        have landed: sent again, its events are found as duplicates of themselves, so a
        retried batch reports every event stored (a real redelivery in it then counts as
        new: one more wake of the worker, nothing stored twice)."""
        try:
            return self._insert(events)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        self._insert(events)
        return {(event.source, event.dedupe_key) for event in events}

    def _insert(self, events: Sequence[NewEvent]) -> set[tuple[str, str]]:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                return insert_new(self._conn, events)
        except Exception:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @staticmethod
    def _mark(event: NewEvent, fresh: set[tuple[str, str]]) -> Stored:
        key = (event.source, event.dedupe_key)
        if key in fresh:
            fresh.discard(key)  # a second copy in the same batch is a duplicate
            return Stored(duplicate=False)
        return Stored(duplicate=True)
