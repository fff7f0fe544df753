"""The inbox as a work queue, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlmodel import Session

from sync_core.store import attempts, queue
from sync_core.store.inbox import NewEvent, get_event, insert_new
from sync_core.store.models import AttemptOutcome, utcnow

LEASE = timedelta(seconds=30)


def _ev(key: str, entity: str, source: str = "wecom") -> NewEvent:
    return NewEvent(source=source, dedupe_key=key, entity_kind="user", entity_key=entity,
                    event_type="update_user", payload={"user_id": entity, "n": key},
                    received_at=utcnow())


def _claim(engine, owner: str = "w1", now=None, max_entities: int = 10):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return queue.claim(conn, owner=owner, now=now or utcnow(), lease=LEASE,
                           max_entities=max_entities)


def test_claim_coalesces_an_entity_and_keeps_it_exclusive(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a"), _ev("2", "b"), _ev("3", "a")])
    claims = _claim(engine)
    assert [(c.entity_key, c.ids) for c in claims] == [("a", (1, 3)), ("b", (2,))]
    assert all(e.attempts == 1 for c in claims for e in c.events)
    # A new hint for "a" while "a" is in flight waits; nothing else is due.
    with engine.begin() as conn:
        insert_new(conn, [_ev("4", "a")])
    assert _claim(engine, owner="w2") == []
    with engine.begin() as conn:
        queue.complete(conn, owner="w1", ids=claims[0].ids, now=utcnow(), outcome="ok")
    again = _claim(engine, owner="w2")
    assert [(c.entity_key, c.ids) for c in again] == [("a", (4,))]


def test_expired_lease_returns_events_to_the_queue(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a")])
    first = _claim(engine, owner="crashed")
    assert first and _claim(engine, owner="w2") == []
    later = utcnow() + LEASE + timedelta(seconds=1)
    taken = _claim(engine, owner="w2", now=later)
    assert [c.ids for c in taken] == [(1,)] and taken[0].attempts == 2
    # The crashed worker's late completion no longer owns the row.
    with engine.begin() as conn:
        assert queue.complete(conn, owner="crashed", ids=(1,), now=later, outcome="x") == 0
        assert queue.complete(conn, owner="w2", ids=(1,), now=later, outcome="ok") == 1


def test_failure_backoff_dead_and_replay(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a")])
    now = utcnow()
    claims = _claim(engine, now=now)
    with engine.begin() as conn:
        queue.fail(conn, owner="w1", ids=claims[0].ids, now=now, error="503 from Authing",
                   retry_at=now + timedelta(seconds=60))
    assert _claim(engine, now=now + timedelta(seconds=1)) == []
    retry = _claim(engine, now=now + timedelta(seconds=61))
    assert retry and retry[0].attempts == 2
    with engine.begin() as conn:
        queue.fail(conn, owner="w1", ids=retry[0].ids, now=now, error="gave up", retry_at=None)
    with Session(engine) as session:
        row = get_event(session, 1)
        assert row is not None and row.status == "dead" and row.last_error == "gave up"
    assert _claim(engine, now=now + timedelta(days=1)) == []
    with engine.begin() as conn:
        assert queue.replay(conn, event_id=1, now=now) is True
        assert queue.replay(conn, event_id=999, now=now) is False
    replayed = _claim(engine, now=now + timedelta(seconds=1))
    assert replayed and replayed[0].attempts == 1


def test_concurrent_claimers_never_share_an_entity(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        insert_new(conn, [_ev(str(i), f"u{i % 40}") for i in range(200)])
    seen: list[tuple[str, tuple[int, ...]]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            claims = _claim(engine, owner=name, max_entities=3)
            if not claims:
                return
            with lock:
                seen.extend((c.entity_key, c.ids) for c in claims)
            with engine.begin() as conn:
                for c in claims:
                    queue.complete(conn, owner=name, ids=c.ids, now=utcnow(), outcome="ok")

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for _, batch in seen for i in batch]
    assert sorted(ids) == list(range(1, 201))  # every event exactly once


def test_a_redelivery_collapses_only_while_the_first_copy_waits(engine) -> None:  # type: ignore[no-untyped-def]
    """Issue 11, kind 1: the same bytes after the entity was claimed (read) are a new hint."""
    with engine.begin() as conn:
        assert insert_new(conn, [_ev("same", "hetao")]) == {("wecom", "same")}
        assert insert_new(conn, [_ev("same", "hetao")]) == set()  # still waiting: one hint
    [first] = _claim(engine)
    assert len(first.ids) == 1
    with engine.begin() as conn:  # in flight: the read may already have happened
        assert insert_new(conn, [_ev("same", "hetao")]) == {("wecom", "same")}
        assert insert_new(conn, [_ev("same", "hetao")]) == set()
        queue.complete(conn, owner="w1", ids=first.ids, now=utcnow(), outcome="ok")
    [second] = _claim(engine)
    assert len(second.ids) == 1 and second.ids != first.ids
    with engine.begin() as conn:
        queue.complete(conn, owner="w1", ids=second.ids, now=utcnow(), outcome="ok")
        assert insert_new(conn, [_ev("same", "hetao")]) == {("wecom", "same")}  # after done
        queue.replay(conn, event_id=first.ids[0], now=utcnow())
    with Session(engine) as session:
        released = get_event(session, first.ids[0])
        assert released is not None and released.dedupe_key == f"same#{first.ids[0]}"
    [third] = _claim(engine)
    assert len(third.ids) == 2 and first.ids[0] in third.ids
    with Session(engine) as session:  # a second claim keeps the released key as it was
        again = get_event(session, first.ids[0])
        assert again is not None and again.dedupe_key == f"same#{first.ids[0]}"


def test_transient_failures_spend_time_not_attempts(engine) -> None:  # type: ignore[no-untyped-def]
    """An outage's failures are kept apart from the attempt budget; the entity's clock
    starts at its first one, and an event that arrives during the outage joins it."""
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a")])
    start = utcnow()
    now = start
    for n in range(1, 6):
        claims = _claim(engine, now=now)
        assert claims[0].attempts == n and claims[0].counted_attempts == 1
        since = claims[0].transient_since
        assert since is None if n == 1 else _naive(since) == _naive(start)
        with engine.begin() as conn:
            queue.fail(conn, owner="w1", ids=claims[0].ids, now=now, error="503",
                       retry_at=now + timedelta(seconds=1),
                       transient_since=claims[0].transient_since or now)
        now += timedelta(seconds=2)
        if n == 3:
            with engine.begin() as conn:
                insert_new(conn, [_ev("2", "a")])
    claims = _claim(engine, now=now)
    assert claims[0].ids == (1, 2) and claims[0].counted_attempts == 1
    assert _naive(claims[0].transient_since) == _naive(start)
    # A non-transient retry is counted.
    with engine.begin() as conn:
        queue.fail(conn, owner="w1", ids=claims[0].ids, now=now, error="conflict",
                   retry_at=now)
    again = _claim(engine, now=now + timedelta(seconds=1))
    assert again[0].counted_attempts == 2 and again[0].attempts == 7
    with engine.begin() as conn:
        queue.fail(conn, owner="w1", ids=again[0].ids, now=now, error="conflict",
                   retry_at=now)
        assert queue.replay(conn, event_id=1, now=now) is True
    with Session(engine) as session:
        row = get_event(session, 1)
        assert row is not None and row.transient_since is None and row.transient_failures == 0


def _naive(value):  # type: ignore[no-untyped-def]
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    return value.replace(tzinfo=None)


def test_settle_many_claims_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    """A worker cycle settles every finished claim in one call: each event gets its status
    and one attempt row, whatever the mix; events leased by someone else are left alone."""
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a"), _ev("2", "b"), _ev("3", "a"), _ev("4", "c"),
                          _ev("5", "d"), _ev("6", "e")])
    now = utcnow()
    claims = {c.entity_key: c for c in _claim(engine, now=now)}
    assert claims["a"].ids == (1, 3)
    later = now + timedelta(seconds=5)
    since = now - timedelta(minutes=3)
    settlements = [
        queue.Settlement(claims["a"].ids, AttemptOutcome.DONE, "applied"),
        queue.Settlement(claims["b"].ids, AttemptOutcome.RETRY, "409 conflict",
                         retry_at=later + timedelta(seconds=30)),
        queue.Settlement(claims["c"].ids, AttemptOutcome.RETRY, "503 from Authing",
                         retry_at=later + timedelta(seconds=60), transient_since=since),
        queue.Settlement(claims["d"].ids, AttemptOutcome.DEAD, "400 invalid"),
        queue.Settlement(claims["e"].ids, AttemptOutcome.DONE, "other"),
    ]
    with engine.begin() as conn:
        # "e" is settled by its owner first: this worker's settlement no longer owns it.
        assert queue.complete(conn, owner="w1", ids=claims["e"].ids, now=later,
                              outcome="first") == 1
        assert queue.settle(conn, owner="w1", now=later, settlements=settlements) == 5
        history = attempts.of_events(conn, range(1, 7))
    with Session(engine) as session:
        rows = {i: get_event(session, i) for i in range(1, 7)}
    status = {i: (r.status, r.outcome or r.last_error) for i, r in rows.items() if r}
    assert status == {1: ("done", "applied"), 3: ("done", "applied"),
                      2: ("failed", "409 conflict"), 4: ("failed", "503 from Authing"),
                      5: ("dead", "400 invalid"), 6: ("done", "first")}
    assert rows[4] is not None and rows[4].transient_failures == 1
    assert rows[2] is not None and rows[2].transient_failures == 0
    assert {i: [(h["number"], h["outcome"], h["detail"]) for h in hs]
            for i, hs in history.items()} == {
        1: [(1, "done", "applied")], 3: [(1, "done", "applied")],
        2: [(1, "retry", "409 conflict")], 4: [(1, "retry", "503 from Authing")],
        5: [(1, "dead", "400 invalid")], 6: [(1, "done", "first")]}
    # The retries come back when due, the transient one with its outage clock.
    again = {c.entity_key: c for c in _claim(engine, now=later + timedelta(seconds=61))}
    assert set(again) == {"b", "c"}
    assert again["c"].transient_since is not None and again["b"].transient_since is None


def test_an_attempt_cut_by_an_expired_lease_is_in_the_history(engine) -> None:  # type: ignore[no-untyped-def]
    """A worker that stopped mid-attempt (crash, kill -9) leaves no settlement; the next
    claim records that attempt as interrupted, once, before its own."""
    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a"), _ev("2", "a"), _ev("3", "b")])
    first = _claim(engine, owner="crashed-host-1")
    assert {c.entity_key for c in first} == {"a", "b"}
    later = utcnow() + LEASE + timedelta(seconds=1)
    taken = _claim(engine, owner="w2", now=later)
    assert {c.entity_key for c in taken} == {"a", "b"}
    with engine.begin() as conn:
        queue.complete(conn, owner="w2", ids=tuple(i for c in taken for i in c.ids),
                       now=later, outcome="ok")
        history = {i: attempts.of_event(conn, i) for i in (1, 2, 3)}
    for event_id, rows in history.items():
        assert [(r["outcome"], r["number"]) for r in rows] == [
            (AttemptOutcome.INTERRUPTED.value, 1), (AttemptOutcome.DONE.value, 2)], event_id
        assert "crashed-host-1" in rows[0]["detail"] and rows[0]["started_at"]
    # A claim after a settled attempt records nothing more.
    with engine.begin() as conn:
        insert_new(conn, [_ev("4", "a")])
    (again,) = _claim(engine, owner="w3", now=later + timedelta(seconds=1))
    with engine.begin() as conn:
        assert attempts.of_event(conn, again.ids[0]) == []


def test_the_events_being_applied_are_not_open_to_their_own_checks(engine) -> None:  # type: ignore[no-untyped-def]
    """A sync-now applies both directions under one ops event: the downstream step's
    "is upstream still busy with this entity?" must not wait for that very event."""
    import contextvars

    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a", source="ops")])
    [claim] = _claim(engine)

    def busy() -> bool:
        with engine.connect() as conn:
            return queue.has_open(conn, sources=("wecom", "ops"), kind="user", key="a")

    def held() -> bool:
        queue.HELD.set(claim.ids)
        return busy()

    assert busy() and not contextvars.copy_context().run(held)
    with engine.begin() as conn:
        insert_new(conn, [_ev("2", "a")])  # a WeCom change arrives meanwhile
    assert contextvars.copy_context().run(held)


def test_a_replay_refuses_an_event_a_worker_is_applying(engine) -> None:  # type: ignore[no-untyped-def]
    """Replaying a claimed event would free it for a second worker while the first still
    applies it: the replay waits until the lease is settled or expired."""
    import pytest

    with engine.begin() as conn:
        insert_new(conn, [_ev("1", "a")])
    claims = _claim(engine, owner="w1")
    with engine.begin() as conn, pytest.raises(queue.EventInFlight):
        queue.replay(conn, event_id=1, now=utcnow(), actor="ops")
    assert _claim(engine, owner="w2") == []  # still w1's alone
    with engine.begin() as conn:
        assert queue.complete(conn, owner="w1", ids=claims[0].ids, now=utcnow(),
                              outcome="ok") == 1
        assert queue.replay(conn, event_id=1, now=utcnow(), actor="ops")
        assert queue.replay(conn, event_id=1, now=utcnow(), actor="ops")  # queued: fine
        assert not queue.replay(conn, event_id=99, now=utcnow(), actor="ops")
    assert [c.ids for c in _claim(engine, owner="w2")] == [(1,)]


def test_release_hands_back_only_what_it_still_holds(engine) -> None:  # type: ignore[no-untyped-def]
    """A claim handed back is due at once with no attempt spent and its dedupe key back;
    an event whose lease lapsed and that an operator replayed meanwhile is not touched."""
    with engine.begin() as conn:
        insert_new(conn, [_ev("k1", "a"), _ev("k2", "b")])
    claims = _claim(engine, owner="w1")
    later = utcnow() + LEASE + timedelta(seconds=1)
    with engine.begin() as conn:
        assert queue.replay(conn, event_id=claims[1].ids[0], now=later)
        assert queue.release(conn, owner="w1", ids=(*claims[0].ids, *claims[1].ids)) == 1
        assert insert_new(conn, [_ev("k1", "a")]) == set()  # collapses into the first again
        keys = {r[0]: r[1] for r in conn.exec_driver_sql(
            "SELECT entity_key, dedupe_key FROM inbox_events")}
    assert keys == {"a": "k1", "b": f"k2#{claims[1].ids[0]}"}
    again = _claim(engine, owner="w2", now=later)
    assert [(c.entity_key, c.attempts) for c in again] == [("a", 1), ("b", 1)]
