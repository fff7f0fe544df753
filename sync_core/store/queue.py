"""The inbox as a work queue: claims with leases, per-entity order, retries, dead letters.

A claim takes *every* open event of an entity at once (coalescing): events are hints
("entity K changed"), so one pass over the entity's current state answers all of them.
An entity with events in flight is not claimed again until they settle, which keeps
order per entity key while different entities run concurrently.

A claim also *releases* each event's dedupe key (``<key>#<id>``): from then on the entity
may be read at any moment, so a byte-identical callback that arrives later is a new hint
and is stored, not collapsed. WeCom's plaintext is not unique per change (``CreateTime``
has whole seconds; trimmed callbacks carry only ids): only a redelivery of an event that
is still waiting for its first claim may be collapsed into it (``inbox.insert_new``).

Functions take a connection and never commit; the caller owns the transaction.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    DateTime,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from . import attempts
from .models import AttemptOutcome, EventStatus, InboxEvent

_OPEN = (EventStatus.PENDING.value, EventStatus.FAILED.value)
_CLAIM_LOCK = 7_305_002  # serialises claims across processes sharing PostgreSQL
_T = InboxEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    event_type: str
    payload: dict[str, Any]
    attempts: int  # including this claim
    received_at: datetime
    transient_since: datetime | None = None  # when its transient failures began
    transient_failures: int = 0  # attempts spent on transient failures


@dataclass(frozen=True, slots=True)
class Claim:
    """All open events of one entity, oldest first."""

    source: str
    entity_kind: str
    entity_key: str
    events: tuple[ClaimedEvent, ...]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(e.id for e in self.events)

    @property
    def attempts(self) -> int:
        return max(e.attempts for e in self.events)

    @property
    def counted_attempts(self) -> int:
        """Attempts the attempt budget counts: those not spent on transient failures."""
        return max(e.attempts - e.transient_failures for e in self.events)

    @property
    def transient_since(self) -> datetime | None:
        """When the entity's transient failures began (the earliest of its events: one that
        arrived during an outage joins the outage already running)."""
        return min((e.transient_since for e in self.events if e.transient_since is not None),
                   default=None)


def claim(conn: Connection, *, owner: str, now: datetime, lease: timedelta,
          max_entities: int, sources: tuple[str, ...] | None = None) -> list[Claim]:
    """Lease up to ``max_entities`` entities that have a due event and none in flight.

    Statements whatever the number of entities: one query for the due entities and one
    update that leases all their open events (on PostgreSQL also the lock with the planner
    switch, and its restore); one more only when an event's lease ran out under a worker
    that stopped mid-attempt, to add that attempt to its history as interrupted
    (store.attempts).

    The due query walks the open events in id order (``ix_inbox_open``) and stops after
    ``8 × max_entities`` rows, whatever the backlog: on PostgreSQL the claim prices sorting
    out of the planner's reach (``enable_sort``) for that query, since statistics lag a
    queue that fills in seconds and with them it sorted every open event to take the first
    few, reading the whole backlog on each claim."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        sort_was = conn.execute(_LOCK_UNSORTED, {"k": _CLAIM_LOCK}).scalar_one()
    due = conn.execute(_due(postgres, filtered=bool(sources)),
                       {"now": now, "scan": max_entities * 8, "sources": list(sources or ())})
    rows_due = due.all()
    if postgres:
        conn.execute(_SORT, {"value": sort_was})
    picked = list(dict.fromkeys((r.source, r.entity_kind, r.entity_key)
                                for r in rows_due))[:max_entities]
    if not picked:
        return []
    chosen = set(picked)
    if any(r.lease_owner is not None for r in rows_due
           if (r.source, r.entity_kind, r.entity_key) in chosen):
        conn.execute(_INTERRUPTED, {"picked": picked, "now": now})
    rows = conn.execute(_LEASE, {"picked": picked, "now": now, "owner": owner,
                                 "until": now + lease}).all()
    events: dict[tuple[str, str, str], list[ClaimedEvent]] = {}
    for r in rows:
        events.setdefault((r.source, r.entity_kind, r.entity_key), []).append(
            ClaimedEvent(r.id, r.event_type, r.payload, r.attempts, r.received_at,
                         r.transient_since, r.transient_failures))
    return [Claim(*key, tuple(sorted(events[key], key=lambda e: e.id)))
            for key in picked if key in events]


# The worker's statements are built once: SQLAlchemy then skips constructing them and
# computing their cache keys on every cycle, which was most of a claim's CPU.
# The claim lock, and sorting priced out for the due query (transaction-local, restored by
# ``_SORT``). The value it had is read in the same statement, before the set_config: this
# relies on PostgreSQL evaluating a target list left to right, which it does though it
# does not promise it (a test checks a value set before the claim is restored).
_LOCK_UNSORTED = text("SELECT current_setting('enable_sort'), pg_advisory_xact_lock(:k), "
                      "set_config('enable_sort', 'off', true)")
_SORT = text("SELECT set_config('enable_sort', :value, true)")
_NOW = bindparam("now", type_=DateTime(timezone=True))
_FREE = or_(_T.c.lease_until.is_(None), _T.c.lease_until < _NOW)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)


@functools.cache
def _due(postgres: bool, *, filtered: bool) -> Select[Any]:
    """Entities with a due event and none in flight, oldest event first."""
    other = _T.alias("in_flight")
    in_flight = select(other.c.id).where(
        other.c.entity_kind == _T.c.entity_kind, other.c.entity_key == _T.c.entity_key,
        other.c.source == _T.c.source, other.c.status.in_(_OPEN), other.c.lease_until >= _NOW,
    ).exists()
    due = select(_T.c.source, _T.c.entity_kind, _T.c.entity_key, _T.c.lease_owner).where(
        _T.c.status.in_(_OPEN), _T.c.next_attempt_at <= _NOW, _FREE, ~in_flight,
    ).order_by(_T.c.id).limit(bindparam("scan"))
    if filtered:
        due = due.where(_T.c.source.in_(bindparam("sources", expanding=True)))
    if postgres:
        # Rows another transaction holds are skipped, not waited for. The advisory lock
        # taken first is what keeps an *entity* exclusive across workers (its rows may be
        # different rows from the ones another claimer locked).
        due = due.with_for_update(skip_locked=True, of=_T)
    return due


# ``<key>#<id>``: idempotent, so a replayed (already released) event keeps its key.
_SUFFIX = literal("#", String) + cast(_T.c.id, String)
_RELEASE = case((_T.c.dedupe_key.endswith(_SUFFIX), _T.c.dedupe_key),
                else_=_T.c.dedupe_key + _SUFFIX)

_LEASE = (
    update(_T)
    .where(tuple_(_T.c.source, _T.c.entity_kind, _T.c.entity_key)
           .in_(bindparam("picked", expanding=True)), _T.c.status.in_(_OPEN), _FREE)
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"),
            attempts=_T.c.attempts + 1, claimed_at=_NOW, dedupe_key=_RELEASE)
    .returning(_T.c.id, _T.c.event_type, _T.c.payload, _T.c.attempts, _T.c.received_at,
               _T.c.source, _T.c.entity_kind, _T.c.entity_key, _T.c.transient_since,
               _T.c.transient_failures)
)
_INTERRUPTED = attempts.interrupted(
    and_(tuple_(_T.c.source, _T.c.entity_kind, _T.c.entity_key)
         .in_(bindparam("picked", expanding=True)), _T.c.status.in_(_OPEN),
         _T.c.lease_owner.is_not(None), _T.c.lease_until < _NOW))
_RELEASE_CLAIM = update(_T).where(_T.c.id.in_(_IDS), _T.c.lease_owner == bindparam("owner"),
                                  _T.c.status.in_(_OPEN)).values(
    lease_owner=None, lease_until=None, claimed_at=None, attempts=_T.c.attempts - 1,
).returning(_T.c.id)
_HOLDER = _T.alias("holder")
_BARE = func.substr(_T.c.dedupe_key, 1, func.length(_T.c.dedupe_key) - func.length(_SUFFIX))
_UNRELEASE_KEY = update(_T).where(
    _T.c.id == bindparam("event_id"), _T.c.lease_owner.is_(None), _T.c.attempts == 0,
    _T.c.dedupe_key.endswith(_SUFFIX),
    ~exists().where(_HOLDER.c.source == _T.c.source, _HOLDER.c.dedupe_key == _BARE),
).values(dedupe_key=_BARE)
_RENEW = update(_T).where(_T.c.id.in_(_IDS), _T.c.lease_owner == bindparam("owner")).values(
    lease_until=bindparam("until")).returning(_T.c.id)

# Settling statements match one event (``:event_id``) still leased by ``:owner``, and are run as
# one executemany per kind of settlement for all the claims a worker cycle settles (psycopg
# pipelines an executemany into one round trip). Each settlement first adds the attempt to
# the event's history (store.attempts), from the row as the claim left it.
_OWNED = and_(_T.c.id == bindparam("event_id"), _T.c.lease_owner == bindparam("owner"))
_COMPLETE = update(_T).where(_OWNED).values(
    status=EventStatus.DONE.value, processed_at=_NOW, outcome=bindparam("text"),
    last_error=None, lease_owner=None, lease_until=None)
_DEAD = update(_T).where(_OWNED).values(
    status=EventStatus.DEAD.value, processed_at=_NOW, last_error=bindparam("text"),
    lease_owner=None, lease_until=None)
_RETRY = update(_T).where(_OWNED).values(
    status=EventStatus.FAILED.value, next_attempt_at=bindparam("retry_at"),
    last_error=bindparam("text"), lease_owner=None, lease_until=None)
# A transient failure: the attempt is not counted against the attempt budget, and the
# entity's outage clock starts (for events that arrived during it, at the entity's start).
_RETRY_TRANSIENT = _RETRY.values(
    transient_failures=_T.c.transient_failures + 1,
    transient_since=bindparam("since", type_=DateTime(timezone=True)))
_RECORD = {outcome: attempts.settled_from(_OWNED, outcome=outcome.value)
           for outcome in (AttemptOutcome.DONE, AttemptOutcome.RETRY, AttemptOutcome.DEAD)}


@dataclass(frozen=True, slots=True)
class Settlement:
    """What becomes of one claim's events: ``done`` (``text`` is the outcome), ``dead``, or
    ``retry`` at ``retry_at`` (``text`` is the error); ``transient_since`` marks a transient
    failure (see ``fail``)."""

    ids: tuple[int, ...]
    outcome: AttemptOutcome
    text: str
    retry_at: datetime | None = None
    transient_since: datetime | None = None

    def statement(self) -> Any:
        if self.outcome is AttemptOutcome.DONE:
            return _COMPLETE
        if self.outcome is AttemptOutcome.DEAD:
            return _DEAD
        return _RETRY if self.transient_since is None else _RETRY_TRANSIENT


def settle(conn: Connection, *, owner: str, now: datetime,
           settlements: Sequence[Settlement]) -> int:
    """Settle the events of any number of claims, each with an attempt row; only events
    still leased by ``owner`` change. Two statements per kind of settlement, whatever the
    number of claims. Returns how many events were settled."""
    groups: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
    for s in settlements:
        stmt = s.statement()
        rows = groups.setdefault(stmt, (_RECORD[s.outcome], []))[1]
        rows += ({"event_id": i, "owner": owner, "now": now, "text": s.text[:2000],
                  "retry_at": s.retry_at, "since": s.transient_since} for i in s.ids)
    settled = 0
    for stmt, (record, rows) in groups.items():
        conn.execute(record, rows)
        settled += int(conn.execute(stmt, rows).rowcount or 0)
    return settled


def release(conn: Connection, *, owner: str, ids: tuple[int, ...]) -> int:
    """Hand back events ``owner`` claimed and never started (a worker stopping): they are
    due again at once, as if never claimed: no attempt behind, and their dedupe key back
    (a redelivery collapses into them again) unless a redelivery stored meanwhile holds it.
    Returns how many."""
    released = [r.id for r in conn.execute(_RELEASE_CLAIM, {"ids": list(ids), "owner": owner})]
    if released:
        # One at a time: two events of an entity may share a key (a redelivery stored after
        # the first was claimed); the first to get it back keeps it. In a savepoint: a
        # redelivery the inbox writer commits meanwhile may take the key first, and losing
        # it costs one more row, not the worker's whole transaction.
        with contextlib.suppress(IntegrityError), conn.begin_nested():
            conn.execute(_UNRELEASE_KEY, [{"event_id": i} for i in released])
    return len(released)


def renew(conn: Connection, *, owner: str, ids: tuple[int, ...],
          until: datetime) -> frozenset[int]:
    """Extend ``owner``'s leases on ``ids`` while work is still running; returns the ids
    still leased to it (one missing: its lease ran out and another worker took it)."""
    return frozenset(r.id for r in conn.execute(
        _RENEW, {"ids": list(ids), "owner": owner, "until": until}))


def complete(conn: Connection, *, owner: str, ids: tuple[int, ...], now: datetime,
             outcome: str) -> int:
    return settle(conn, owner=owner, now=now,
                  settlements=[Settlement(ids, AttemptOutcome.DONE, outcome)])


def fail(conn: Connection, *, owner: str, ids: tuple[int, ...], now: datetime, error: str,
         retry_at: datetime | None, transient_since: datetime | None = None) -> int:
    """``retry_at`` None → dead (gave up, replayable); otherwise failed until then.

    ``transient_since`` marks a transient failure (an upstream outage or throttling): the
    attempt is then not counted by the attempt budget, and the entity's time budget is
    measured from that instant."""
    outcome = AttemptOutcome.DEAD if retry_at is None else AttemptOutcome.RETRY
    return settle(conn, owner=owner, now=now, settlements=[
        Settlement(ids, outcome, error, retry_at,
                   transient_since if retry_at is not None else None)])


class EventInFlight(Exception):
    """A worker holds the event right now (→ 409): a replay would let another claim it
    while the first still applies it."""


def replay(conn: Connection, *, event_id: int, now: datetime, actor: str = "ops") -> bool:
    """Re-queue one event (any status) for immediate processing with fresh attempts; the
    replay is added to the event's history (``actor``: who asked), which it never clears.
    False when there is no such event. Raises EventInFlight while a worker's lease on it
    runs: one conditional update, so the check cannot go stale before the write."""
    result = conn.execute(update(_T).where(
        _T.c.id == event_id, or_(_T.c.lease_until.is_(None), _T.c.lease_until < now)).values(
        status=EventStatus.PENDING.value, attempts=0, next_attempt_at=now,
        transient_since=None, transient_failures=0,
        lease_owner=None, lease_until=None, processed_at=None))
    if result.rowcount:
        attempts.record_replay(conn, event_id=event_id, now=now, actor=actor)
        return True
    if conn.execute(select(_T.c.id).where(_T.c.id == event_id)).first() is not None:
        raise EventInFlight(f"event {event_id} is being applied now; replay it once it "
                            "settles")
    return False


def has_open(conn: Connection, *, sources: tuple[str, ...], kind: str, key: str) -> bool:
    """Whether ``sources`` hold an open event (pending, claimed or due to retry) about
    entity (``kind``, ``key``), other than the events being applied in this context
    (``HELD``: an operator's sync-now runs both directions under one event): one indexed
    probe."""
    held = HELD.get()
    return conn.execute(_OPEN_ABOUT[bool(held)], {
        "sources": list(sources), "kind": kind, "key": key, "held": list(held)}
    ).first() is not None


_OPEN_ABOUT = {
    held: select(_T.c.id).where(
        _T.c.source.in_(bindparam("sources", expanding=True)),
        _T.c.entity_kind == bindparam("kind"), _T.c.entity_key == bindparam("key"),
        _T.c.status.in_(_OPEN),
        *([_T.c.id.not_in(bindparam("held", expanding=True))] if held else [])).limit(1)
    for held in (False, True)}


# The ids of the events the current task applies (set by the worker per claim).
HELD: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("held_events",
                                                                        default=())
