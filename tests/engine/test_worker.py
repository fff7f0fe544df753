"""The worker's decisions, over fake ports: the verdict on an entity sync, the backoff, the
dispatch of an inbox event to its direction by source, and giving up after the budget."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from sync_core.directory.operations import Action, Operation
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.entity_sync import EntityResult, EntitySync
from sync_core.engine.executor import ItemStatus, Outcome
from sync_core.engine.ports import ReadFrom
from sync_core.engine.worker import Settle, Worker, backoff, judge
from sync_core.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    StopSync,
    TransientError,
)
from sync_core.metrics import Metrics
from sync_core.store.models import utcnow
from sync_core.store.queue import Claim, ClaimedEvent
from tests.conftest import make_settings
from tests.engine.fakes import User, fake_direction


def _result(*outcomes: Outcome, echo: bool = False) -> EntityResult:
    return EntityResult(Kind.USER, "ann", outcomes, ReadFrom.API,
                        {(Kind.USER, "ann"): lambda: {"name": "Ann"}}, echo=echo)


def _applied() -> Outcome:
    return Outcome(Operation(Kind.USER, "ann", Action.UPDATE, "t-1",
                             requests=(_request(),)), ItemStatus.APPLIED)


def _request():  # type: ignore[no-untyped-def]
    from sync_core.directory.operations import Request

    return Request("update", {"key": "ann"})


def _failed(error: Exception) -> Outcome:
    return Outcome(Operation(Kind.USER, "ann", Action.UPDATE, "t-1", requests=(_request(),)),
                   ItemStatus.FAILED, error)  # type: ignore[arg-type]


def _skipped(cause: Cause) -> Outcome:
    return Outcome(Operation(Kind.USER, "ann", Action.SKIP, reason=f"{cause}: why",
                             cause=cause), ItemStatus.SKIPPED)


def test_applied_is_done_and_links_what_was_written() -> None:
    verdict = judge(_result(_applied()))
    assert verdict.status is Settle.DONE
    assert [(r.kind, r.source_key, r.target_id) for r in verdict.links] == [("user", "ann",
                                                                             "t-1")]
    assert verdict.links[0].essence_hash is not None


@pytest.mark.parametrize("error", [TransientError("later", retry_after=7.0),
                                   ConflictError("re-plan"), StopSync("credentials")])
def test_failures_that_may_pass_are_retried(error: Exception) -> None:
    verdict = judge(_result(_applied(), _failed(error)))
    assert verdict.status is Settle.RETRY
    assert verdict.retry_after == (7.0 if isinstance(error, TransientError) else None)
    assert len(verdict.links) == 1  # the write that happened is recorded all the same


@pytest.mark.parametrize("error", [BadRequestError("invalid"), NotFoundError("gone")])
def test_permanent_failures_are_dead(error: Exception) -> None:
    verdict = judge(_result(_failed(error), _failed(TransientError("later"))))
    assert verdict.status is Settle.DEAD


def test_a_conflict_skip_is_dead_and_a_blocked_skip_is_retried() -> None:
    assert judge(_result(_skipped(Cause.CONFLICT))).status is Settle.DEAD
    assert judge(_result(_skipped(Cause.BLOCKED))).status is Settle.RETRY
    # The text does not decide: only the cause.
    for cause in (Cause.NOT_MANAGED, Cause.POLICY, Cause.INCOMPLETE, Cause.PROTECTED):
        assert judge(_result(_skipped(cause))).status is Settle.DONE


def test_an_echo_is_done_with_nothing_written() -> None:
    verdict = judge(_result(echo=True))
    assert verdict.status is Settle.DONE and verdict.links == ()
    assert "echo of our own write" in verdict.text


def test_backoff_doubles_with_jitter_under_a_cap_and_never_below_the_hint() -> None:
    random.seed(7)
    for attempts, low, high in ((1, 1, 2), (2, 2, 4), (3, 4, 8), (10, 15, 30)):
        for _ in range(50):
            assert low <= backoff(attempts, 30) <= high
    assert backoff(1, 30, at_least=45) == 45
    assert backoff(0, 30) <= 2  # a first failure waits as long as the first retry


def _claim(source: str, kind: str, key: str, attempts: int = 1,
           **payload: object) -> Claim:
    return Claim(source, kind, key, (ClaimedEvent(1, "update", dict(payload), attempts,
                                                  utcnow() - timedelta(seconds=1)),))


def _pending(engine: Engine, keys: Iterable[str]) -> None:
    """An update event for each user in ``keys``, waiting for the worker."""
    from sync_core.store.inbox import NewEvent, insert_new

    with engine.begin() as conn:
        insert_new(conn, [NewEvent(source="wecom", dedupe_key=k, entity_kind="user",
                                   entity_key=k, event_type="update_user", payload={},
                                   received_at=utcnow()) for k in keys])


def _gated(worker: Worker, keys: Iterable[str]
           ) -> tuple[dict[str, asyncio.Event], list[str]]:
    """The worker's entities run until their gate opens; ``started`` lists them in order."""
    gates = {k: asyncio.Event() for k in keys}
    started: list[str] = []

    async def dispatch(claim, payloads):  # type: ignore[no-untyped-def]
        started.append(claim.entity_key)
        await gates[claim.entity_key].wait()
        return f"applied {claim.entity_key}"

    worker._dispatch = dispatch  # type: ignore[method-assign]
    return gates, started


def _worker(**settings: object):  # type: ignore[no-untyped-def]
    d = fake_direction()
    sync = EntitySync(d.ports)
    worker = Worker(make_settings("sqlite://", **settings), create_engine("sqlite://"),
                    {"wecom": sync, "ops": sync}, Metrics())
    return d, worker


async def test_an_event_goes_to_the_direction_of_its_source() -> None:
    d, worker = _worker()
    d.source.users["ann"] = User("ann", "Ann")
    verdict = await worker._decide(_claim("ops", "user", "ann"))
    assert verdict.status is Settle.DONE and verdict.direction == "upstream"
    assert "ann" in d.target.users
    unknown = await worker._decide(_claim("authing", "user", "ann"))
    assert unknown.status is Settle.DEAD and "no handler for authing events" in unknown.text


async def test_kinds_that_are_not_synced_are_settled_without_reads() -> None:
    d, worker = _worker()
    tag = await worker._decide(_claim("wecom", "tag", "1", change_type="update_tag"))
    other = await worker._decide(_claim("wecom", "other", "x", change_type="enter_agent"))
    assert tag.status is other.status is Settle.DONE
    assert "ignored" in other.text and d.source.reads == []


async def test_a_retry_past_the_attempt_budget_goes_dead_with_the_reason() -> None:
    d, worker = _worker(worker_max_attempts=3)
    d.source.users["ann"] = User("ann", "Ann")
    d.writer.fail = {"ann": ConflictError("re-plan")}
    await worker._process(_claim("wecom", "user", "ann", attempts=2))
    await worker._process(_claim("wecom", "user", "ann", attempts=3))
    (_, second), (_, third) = worker._finished
    assert second.status is Settle.RETRY
    assert third.status is Settle.DEAD and third.text.startswith("gave up after 3 attempts")


async def test_transient_failures_spend_time_not_attempts() -> None:
    d, worker = _worker(worker_max_attempts=3, retry_window_hours=1)
    d.source.users["ann"] = User("ann", "Ann")
    d.writer.fail = {"ann": TransientError("target down")}
    fresh = _claim("wecom", "user", "ann", attempts=9)
    old = Claim("wecom", "user", "ann", (ClaimedEvent(
        1, "update", {}, 9, utcnow(), transient_since=utcnow() - timedelta(hours=2),
        transient_failures=9),))
    await worker._process(fresh)
    await worker._process(old)
    (_, within), (_, spent) = worker._finished
    assert within.status is Settle.RETRY and within.transient
    assert spent.status is Settle.DEAD and "retry_window_hours" in spent.text


async def test_the_worker_reads_what_the_opposite_direction_wrote_with_the_claim(
        engine: Engine) -> None:
    from sync_core.directory.essence import digest
    from sync_core.store import links

    d = fake_direction()
    d.source.users.update({"ann": User("ann", "Ann"), "bob": User("bob", "Bob")})
    sync = EntitySync(d.ports)
    worker = Worker(make_settings("sqlite://"), engine, {"wecom": sync}, Metrics())
    _pending(engine, ("ann", "bob"))
    with engine.begin() as conn:
        # Downstream wrote "Ann" into the entity upstream reads as "ann"; nothing to "bob".
        links.record(conn, direction="downstream", now=utcnow(), rows=[
            links.LinkRow("user", "authing-ann", "ann", digest({"name": "Ann"})),
            links.LinkRow("user", "authing-bob", "bob", None)])
    claims = worker._settle_and_claim([], 8)
    verdicts = {c.entity_key: await worker._decide(c) for c in claims}
    assert "echo of our own write" in verdicts["ann"].text and "ann" not in d.target.users
    assert verdicts["bob"].status is Settle.DONE and "bob" in d.target.users


def echo_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directions whose claims read the echo digest, in order (nothing is found)."""
    from sync_core.engine import worker as worker_module

    asked: list[str] = []

    def spy(conn, direction, entities):  # type: ignore[no-untyped-def]
        asked.append(str(direction))
        return {}

    monkeypatch.setattr(worker_module, "written_by_opposite", spy)
    return asked


def test_a_direction_that_plans_every_echo_is_claimed_without_the_echo_read(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """``trust_echoes=False`` throws the digest away: the claim does not read it (one
    statement less per cycle); a trusting direction's claim still does."""
    from sync_core.store.inbox import NewEvent, insert_new

    asked = echo_reads(monkeypatch)
    trusting, planning = fake_direction(), fake_direction()
    worker = Worker(make_settings("sqlite://"), engine,
                    {"wecom": EntitySync(trusting.ports),
                     "authing": EntitySync(planning.ports, trust_echoes=False)}, Metrics())
    with engine.begin() as conn:
        insert_new(conn, [NewEvent(source=source, dedupe_key=source, entity_kind="user",
                                   entity_key="ann", event_type="update", payload={},
                                   received_at=utcnow()) for source in ("wecom", "authing")])
    claims = worker._settle_and_claim([], 8)
    assert sorted(c.source for c in claims) == ["authing", "wecom"]
    assert asked == [str(trusting.ports.direction)]


def test_a_direction_whose_writes_are_held_to_the_claim_takes_the_echo_read(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direction that plans every echo, but whose writer holds its writes to the claim
    (``WriteIntents``), has the digest read with the claim when the opposite direction
    runs here, even when nothing was written (an empty set: the writes are held to
    that); with no opposite direction here, no read."""
    from sync_core.engine.echo import _CLAIMED, Claimed
    from sync_core.store.inbox import NewEvent, insert_new

    from .test_entity_sync import IntendingWriter

    asked = echo_reads(monkeypatch)
    trusting, planning = fake_direction(), fake_direction()
    writer = IntendingWriter(planning.writer)
    held = EntitySync(replace(planning.ports, writer=writer), trust_echoes=False)
    seen: list[Claimed | None] = []

    async def sync_user(key: str, payloads: Any, *, echo_of: Any = None) -> Any:
        seen.append(_CLAIMED.get())
        return "ok"

    monkeypatch.setattr(held, "sync_user", sync_user)
    alone = Worker(make_settings("sqlite://"), engine, {"authing": held}, Metrics())
    worker = Worker(make_settings("sqlite://"), engine,
                    {"wecom": EntitySync(trusting.ports), "authing": held}, Metrics())
    with engine.begin() as conn:
        insert_new(conn, [NewEvent(source="authing", dedupe_key="a", entity_kind="user",
                                   entity_key="ann", event_type="update", payload={},
                                   received_at=utcnow())])
    assert alone._uses_echoes("authing") is False
    claims = worker._settle_and_claim([], 8)
    assert asked == [str(planning.ports.direction)]
    asyncio.run(worker._dispatch(claims[0], []))
    assert seen == [Claimed("user", "ann", frozenset())]


async def test_sync_now_runs_each_direction_in_order_and_says_what_each_did() -> None:
    """An ops event in ``both``: upstream first, then downstream under the key the
    resolver gives; the worst verdict settles it, every direction's links are kept."""

    from sync_core.directory.vocabulary import Direction
    from sync_core.engine.sync_now import SyncNow

    up, down = fake_direction(), fake_direction()
    down_sync = EntitySync(replace(down.ports, direction=Direction.DOWNSTREAM))
    up_sync = EntitySync(up.ports)
    asked: list[tuple[str, str]] = []

    async def resolve(kind: Kind, key: str) -> str | None:
        asked.append((kind, key))
        return {"ann": "a-1"}.get(key)

    worker = Worker(make_settings("sqlite://"), create_engine("sqlite://"),
                    {"wecom": up_sync, "ops": up_sync}, Metrics(),
                    sync_now=SyncNow(up_sync, down_sync, resolve))
    up.source.users["ann"] = User("ann", "Ann")
    down.source.users["a-1"] = User("a-1", "Ann A")
    verdict = await worker._decide(_claim("ops", "user", "ann"))
    assert verdict.status is Settle.DONE, verdict.text
    assert verdict.text.index("upstream:") < verdict.text.index("downstream:")
    assert "ann" in up.target.users and "a-1" in down.target.users
    assert {verdict.direction, *(v.direction for v in verdict.others)} == {
        "upstream", "downstream"}
    assert all(v.links for v in (verdict, *verdict.others))
    nobody = await worker._decide(_claim("ops", "user", "bob"))
    assert "downstream: no Source user maps to bob" in nobody.text
    assert asked == [("user", "ann"), ("user", "bob")]
    # A failing direction settles the event, whatever the other did.
    down.source.users["a-1"] = User("a-1", "Ann B")
    down.writer.fail["a-1"] = TransientError("later")
    failing = await worker._decide(_claim("ops", "user", "ann"))
    assert failing.status is Settle.RETRY and failing.direction == "downstream"
    assert failing.text.startswith("upstream: ") and "later" in failing.text


async def test_a_freed_slot_takes_a_waiting_claim_and_a_stop_hands_the_waiting_back(
        engine: Engine) -> None:
    """Concurrency 2: one more entity waits claimed, and one starts the moment a slot
    frees. At a stop the running finish and settle; the waiting go back to the queue as if
    never claimed (no attempt spent, none in their history)."""
    from sqlalchemy import text


    d = fake_direction()
    worker = Worker(make_settings("sqlite://", worker_concurrency=2, worker_poll_seconds=0.05),
                    engine, {"wecom": EntitySync(d.ports)}, Metrics())
    keys = [f"u{i}" for i in range(6)]
    _pending(engine, keys)
    gates, started = _gated(worker, keys)

    def rows() -> dict[str, tuple[str, bool, int]]:
        with engine.connect() as conn:
            return {r.entity_key: (r.status, r.lease_owner is not None, r.attempts)
                    for r in conn.execute(text("SELECT entity_key, status, lease_owner, "
                                               "attempts FROM inbox_events"))}

    async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(400):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}: {rows()}")

    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await until(lambda: started == ["u0", "u1"] and sum(r[1] for r in rows().values()) == 3,
                "two running and one waiting claimed")
    assert {k for k, r in rows().items() if r[1]} == {"u0", "u1", "u2"}
    gates["u0"].set()
    await until(lambda: started == ["u0", "u1", "u2"], "u2 to take u0's slot")
    await until(lambda: rows()["u0"][0] == "done" and rows()["u3"][1], "u0 settled, u3 claimed")
    stop.set()
    for k in ("u1", "u2"):
        gates[k].set()
    await asyncio.wait_for(running, 10)
    assert started == ["u0", "u1", "u2"]
    final = rows()
    assert {k for k, r in final.items() if r[0] == "done"} == {"u0", "u1", "u2"}
    assert {k: final[k] for k in ("u3", "u4", "u5")} == {
        k: ("pending", False, 0) for k in ("u3", "u4", "u5")}
    with engine.connect() as conn:
        history = {r[0] for r in conn.execute(text(
            "SELECT e.entity_key FROM event_attempts a JOIN inbox_events e "
            "ON e.id = a.event_id"))}
    assert history == {"u0", "u1", "u2"}


async def test_under_a_backlog_a_settlement_waits_for_more_finished_entities(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """With more due entities than slots, a settlement waits a moment (here stretched to
    half a second) for other entities to finish, their slots refilled from the waiting
    claims meanwhile: one database step settles both."""
    from sync_core.engine import worker as worker_module

    monkeypatch.setattr(worker_module, "SETTLE_LINGER", 0.5)
    worker = Worker(make_settings("sqlite://", worker_concurrency=4, worker_poll_seconds=0.05),
                    engine, {"wecom": EntitySync(fake_direction().ports)}, Metrics())
    keys = [f"u{i:02d}" for i in range(12)]
    _pending(engine, keys)
    gates, started = _gated(worker, keys)
    steps: list[list[str]] = []
    step = worker._settle_and_claim

    def counted(settling, limit, releasing=()):  # type: ignore[no-untyped-def]
        if settling:
            steps.append(sorted(c.entity_key for c, _ in settling))
        return step(settling, limit, releasing)

    worker._settle_and_claim = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for _ in range(500):  # 4 running, 2 waiting: the claim took all it asked for
        if len(started) == 4 and len(worker._ready) == 2:
            break
        await asyncio.sleep(0.01)
    gates["u00"].set()
    for _ in range(500):  # u00's slot is refilled from the waiting claims at once
        if len(started) == 5:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert steps == [], "settled without waiting for more to finish"
    gates["u01"].set()
    for _ in range(500):
        if steps:
            break
        await asyncio.sleep(0.01)
    stop.set()
    for gate in gates.values():
        gate.set()
    await asyncio.wait_for(running, 10)
    assert steps[0] == ["u00", "u01"]


async def test_a_waiting_claim_another_worker_took_is_not_started(engine: Engine) -> None:
    """A renewal that finds a waiting claim's events leased to another worker (this one
    was cut off longer than a lease) marks it lost: it is handed back, not started."""
    from sync_core.store import queue as queue_module

    worker = Worker(make_settings("sqlite://", worker_concurrency=1, worker_poll_seconds=0.05,
                                  worker_lease_seconds=5),
                    engine, {"wecom": EntitySync(fake_direction().ports)}, Metrics())
    _pending(engine, ("u0", "u1"))
    gates, started = _gated(worker, ("u0", "u1"))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for _ in range(500):
        if started == ["u0"] and worker._ready:
            break
        await asyncio.sleep(0.01)
    (waiting,) = worker._ready
    with engine.begin() as conn:  # its lease lapsed unseen and worker-b took it
        conn.execute(queue_module._T.update().where(queue_module._T.c.id.in_(waiting.ids))
                     .values(lease_owner="worker-b"))
    await asyncio.sleep(2.0)  # a heartbeat (lease / 3) renews: u1 is not this worker's
    gates["u0"].set()
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert started == ["u0"]
