"""Red team: the worker's waiting claims (prefetch), ``queue.release``, the claim's
``enable_sort`` switch, the idle-only ping and ``autocommit`` link reads (commit dec68e4).

Tests marked "fault" fail on the code they were written against; the others are guards
for properties the change could have broken and did not (kept passing)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from sync_core.directory.vocabulary import Kind
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.worker import Worker
from sync_core.metrics import Metrics
from sync_core.store import inbox, migrate, queue
from sync_core.store.db import is_unavailable, make_engine
from sync_core.store.inbox import NewEvent
from sync_core.store.models import utcnow
from sync_core.wecom.target import LinkIds
from tests.conftest import make_settings
from tests.engine.fakes import fake_direction
from tests.tcp_proxy import postgres_behind_proxy


def _event(key: str, dedupe: str | None = None, **payload: Any) -> NewEvent:
    return NewEvent(source="wecom", dedupe_key=dedupe or key, entity_kind="user",
                    entity_key=key, event_type="update_user", payload=dict(payload),
                    received_at=utcnow())


def _insert(engine: Engine, *events: NewEvent) -> None:
    with engine.begin() as conn:
        inbox.insert_new(conn, list(events))


def _rows(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(text(
            "SELECT id, entity_key, dedupe_key, status, lease_owner, lease_until, attempts "
            "FROM inbox_events ORDER BY id"))}


def _by_key(engine: Engine) -> dict[str, dict[str, Any]]:
    return {r["entity_key"]: r for r in _rows(engine).values()}


def _history(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(text(
            "SELECT e.entity_key, a.outcome FROM event_attempts a JOIN inbox_events e "
            "ON e.id = a.event_id ORDER BY a.id"))]


async def _until(check: Callable[[], bool], what: str, seconds: float = 4.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Harness:
    """A worker whose entities run until their gate opens, recording what each run saw."""

    def __init__(self, engine: Engine, *, owner: str = "worker-a", **settings: object) -> None:
        values: dict[str, object] = {"worker_concurrency": 1, "worker_poll_seconds": 0.05}
        values.update(settings)
        self.engine = engine
        self.worker = Worker(make_settings("sqlite://", None, **values), engine,
                             {"wecom": EntitySync(fake_direction().ports)}, Metrics(),
                             owner=owner)
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[tuple[str, list[int]]] = []  # (entity, event ids of the claim)
        self.running: set[str] = set()
        self.worker._dispatch = self._dispatch  # type: ignore[method-assign]
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _dispatch(self, claim: queue.Claim, payloads: list[dict[str, Any]]) -> str:
        self.started.append((claim.entity_key, list(claim.ids)))
        self.running.add(claim.entity_key)
        try:
            await self.gates.setdefault(claim.entity_key, asyncio.Event()).wait()
        finally:
            self.running.discard(claim.entity_key)
        return f"applied {claim.entity_key}"

    def gate(self, key: str) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run(self.stop))

    async def start_with_u0_running_and_u1_waiting(self) -> None:
        """Concurrency 1: u0 runs behind its gate, u1 waits claimed."""
        self.start()
        await _until(lambda: self.keys_started() == ["u0"]
                     and _by_key(self.engine)["u1"]["lease_owner"] is not None,
                     "u0 running and u1 waiting claimed")

    def keys_started(self) -> list[str]:
        return [k for k, _ in self.started]

    async def finish(self) -> None:
        self.stop.set()
        for gate in self.gates.values():
            gate.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 15)


# -- the stop -------------------------------------------------------------------------


async def test_fault_a_stop_hands_the_waiting_claims_back_before_the_drain(
        engine: Engine) -> None:
    """Fault. A worker told to stop starts nothing more; the claims it holds and will
    never start are of no use to it, so they go back to the queue at the stop (for the
    worker that replaces it in a rolling restart). They are kept leased for the whole
    graceful drain instead (up to ``worker_lease_seconds``), out of every worker's reach."""
    h = Harness(engine)  # concurrency 1: one entity runs, one waits claimed
    _insert(engine, _event("u0"), _event("u1"), _event("u2"))
    h.start()
    await _until(lambda: h.keys_started() == ["u0"]
                 and _by_key(engine)["u1"]["lease_owner"] is not None,
                 "u0 running and u1 waiting claimed")
    h.stop.set()
    try:
        # u0 is still being applied (its gate is closed); u1 will not be started.
        await _until(lambda: _by_key(engine)["u1"]["lease_owner"] is None,
                     "u1 handed back while u0 drains", seconds=2.0)
    finally:
        await h.finish()
    assert h.keys_started() == ["u0"]




def test_fault_a_released_event_collapses_a_redelivery_as_before_its_claim(
        engine: Engine) -> None:
    """Fault (minor). ``queue.release``: a handed-back event is "due again at once, and
    the claim leaves no attempt behind": it is again an event waiting for its first claim
    (attempts 0, never claimed), and such an event absorbs a redelivery of itself
    (``inbox.insert_new``; WeCom re-sends a callback it got no timely answer to). The
    claim's ``#<id>`` suffix on the dedupe key stays, though: the redelivery is stored as
    a second event, one more row and one more attempt history for one change."""
    _insert(engine, _event("u0", "cb-1"))
    with engine.begin() as conn:
        (claim,) = queue.claim(conn, owner="w", now=utcnow(), lease=timedelta(seconds=60),
                               max_entities=4)
        assert queue.release(conn, owner="w", ids=claim.ids) == 1
    with engine.begin() as conn:
        stored = inbox.insert_new(conn, [_event("u0", "cb-1")])
    assert stored == set(), f"the redelivery was stored again: {_rows(engine)}"


# -- waiting claims ---------------------------------------------------------------------


async def test_guard_a_waiting_claim_is_renewed_and_cannot_be_replayed(
        sqlite_engine: Engine) -> None:
    """Guard (held). A claim that waits longer than its lease keeps it (the heartbeat
    renews waiting claims): another worker cannot claim it, and an operator's replay of
    its event is refused (EventInFlight → 409), not let through to a second apply."""
    h = Harness(sqlite_engine, worker_lease_seconds=5)
    _insert(sqlite_engine, _event("u0"), _event("u1"))
    try:
        await h.start_with_u0_running_and_u1_waiting()
        await asyncio.sleep(6.5)  # longer than the lease
        u1 = _by_key(sqlite_engine)["u1"]
        with sqlite_engine.begin() as conn:
            assert queue.claim(conn, owner="worker-b", now=utcnow(),
                               lease=timedelta(seconds=60), max_entities=8) == []
            with pytest.raises(queue.EventInFlight):
                queue.replay(conn, event_id=u1["id"], now=utcnow())
        h.gate("u0").set()
        h.gate("u1").set()
        await _until(lambda: _by_key(sqlite_engine)["u1"]["status"] == "done", "u1 done")
    finally:
        await h.finish()
    assert h.keys_started() == ["u0", "u1"]
    assert _history(sqlite_engine) == [("u0", "done"), ("u1", "done")]


async def test_guard_events_of_a_waiting_entity_are_applied_after_it_in_order(
        engine: Engine) -> None:
    """Guard (held). An event of an entity that waits claimed is not taken into that claim
    (it was read before), is not claimed beside it, and is applied by the next claim of the
    entity, after the first one settled: per entity in order, nothing lost."""
    h = Harness(engine)
    _insert(engine, _event("u0"), _event("u1", "u1-a"))
    try:
        await h.start_with_u0_running_and_u1_waiting()
        _insert(engine, _event("u1", "u1-b"))
        h.worker.wake.set()
        await asyncio.sleep(0.3)
        h.gate("u0").set()
        await _until(lambda: len(h.started) == 2, "u1 started")
        h.gate("u1").set()
        await _until(lambda: all(r["status"] == "done" for r in _rows(engine).values()),
                     "everything done")
    finally:
        await h.finish()
    ids = {r["dedupe_key"].split("#")[0]: i for i, r in _rows(engine).items()}
    assert h.started == [("u0", [ids["u0"]]), ("u1", [ids["u1-a"]]), ("u1", [ids["u1-b"]])]


async def test_fault_a_waiting_claim_whose_lease_ran_out_is_not_started(
        sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault. The worker keeps claims it has not started; when their lease cannot be
    renewed (this worker cut off from the database while its entity runs on), the lease
    runs out and another worker claims and applies the entity, but the first still starts
    its stale copy the moment a slot frees: the same entity is applied twice, side by
    side. The worker knows when the lease it last renewed ends; a claim past it must go
    back, not start."""
    h = Harness(sqlite_engine, worker_lease_seconds=5)

    def cut_off(ids: tuple[int, ...]) -> None:
        raise ConnectionError("database unreachable from this worker")

    _insert(sqlite_engine, _event("u0"), _event("u1"))
    try:
        await h.start_with_u0_running_and_u1_waiting()
        monkeypatch.setattr(h.worker, "_renew", cut_off)
        await asyncio.sleep(6.0)  # u1's lease runs out
        with sqlite_engine.begin() as conn:
            taken = queue.claim(conn, owner="worker-b", now=utcnow(),
                                lease=timedelta(seconds=60), max_entities=8,
                                sources=("wecom",))
        assert "u1" in [c.entity_key for c in taken]  # worker-b applies u1 now
        h.gate("u0").set()
        await asyncio.sleep(0.5)
    finally:
        await h.finish()
    assert h.keys_started() == ["u0"], "worker-a started u1 that worker-b holds"


# -- connections (real PostgreSQL) -------------------------------------------------------


def _connect_within(engine: Engine, seconds: float) -> BaseException | None:
    """Check a connection out and use it, in a thread: what it raised (None: it worked);
    AssertionError when it was still blocked after ``seconds``."""
    outcome: list[BaseException | None] = []

    def use() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome.append(error)

    thread = threading.Thread(target=use, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return AssertionError(f"checkout still blocked after {seconds} s")
    return outcome[0]


@pytest.mark.postgres
def test_guard_the_checkout_ping_reports_a_database_that_is_down(pg_url: str) -> None:
    """Guard (held). A pooled connection, the server gone (reset, refusing): the checkout's
    ping fails at once with an error the service knows as "database unavailable", not a
    hang and not a bug."""
    with postgres_behind_proxy(pg_url) as (url, proxy):
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            assert _connect_within(engine, 5) is None
            proxy.cut()
            error = _connect_within(engine, 5)
            assert error is not None and not isinstance(error, AssertionError), error
            assert is_unavailable(error), repr(error)
        finally:
            engine.dispose()


@pytest.mark.postgres
def test_guard_link_reads_survive_a_postgresql_restart(pg_url: str) -> None:
    """Guard (a fault of an idle-only ping, withdrawn). A restart of PostgreSQL (each
    backend terminated, the server back at once) while the service is busy: the pooled
    connection, used a moment ago, is pinged at checkout and replaced, so the next link
    lookup (``autocommit`` reads) simply works; a failed lookup inside an entity would be
    booked as an internal error against its attempt budget."""
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    engine.dispose()
    ids = LinkIds(engine)
    try:
        assert ids._lookup(Kind.USER, "ann") is None
        with engine.connect() as conn:  # the only pooled connection
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert ids._lookup(Kind.USER, "ann") is None
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_guard_two_workers_on_one_postgresql_never_hold_one_entity_together(
        pg_engine: Engine) -> None:
    """Guard (held). Two workers, each running two entities and holding one more waiting,
    while events keep arriving: no entity is ever applied by both at once, every event is
    applied exactly once, and each entity's events in the order they arrived."""
    workers = [Harness(pg_engine, owner=name, worker_concurrency=2)
               for name in ("worker-a", "worker-b")]
    running: dict[str, str] = {}
    overlaps: list[str] = []
    applied: list[tuple[str, int]] = []
    who: set[str] = set()

    def dispatch_for(name: str) -> Any:
        async def dispatch(claim: queue.Claim, payloads: list[dict[str, Any]]) -> str:
            if claim.entity_key in running:
                overlaps.append(f"{claim.entity_key}: {running[claim.entity_key]} and {name}")
            running[claim.entity_key] = name
            who.add(name)
            await asyncio.sleep(0.02)
            applied.extend((claim.entity_key, i) for i in claim.ids)
            del running[claim.entity_key]
            return "applied"
        return dispatch

    for h in workers:
        h.worker._dispatch = dispatch_for(h.worker.owner)  # type: ignore[method-assign]
        h.start()
    try:
        for wave in range(6):
            _insert(pg_engine, *(_event(f"u{k}", f"u{k}-{wave}") for k in range(10)))
            for h in workers:
                h.worker.wake.set()
            await asyncio.sleep(0.1)
        await _until(lambda: all(r["status"] == "done" for r in _rows(pg_engine).values()),
                     "everything done", seconds=20)
    finally:
        for h in workers:
            h.stop.set()
        await asyncio.gather(*(asyncio.wait_for(h.task, 15) for h in workers
                               if h.task is not None))
    assert overlaps == [] and who == {"worker-a", "worker-b"}
    ids = [i for _, i in applied]
    assert sorted(ids) == sorted(_rows(pg_engine)) and len(ids) == len(set(ids))
    for key in {k for k, _ in applied}:
        mine = [i for k, i in applied if k == key]
        assert mine == sorted(mine), key
