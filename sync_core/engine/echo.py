"""The echo check: is the state an event shows the echo of our own write?

A write by one direction makes the other side send an event about it (a callback, a
webhook). The worker reads, on the connection that claimed the entities and right after
the claim, what the opposite direction last wrote to each of them (the link table, by
target id: one statement per claim, not per entity); entity sync then compares that
digest with the essence of the source state it read, before it plans. Equal: the event is
our own write coming back, and it is settled with nothing planned. No row, or another
state: a real change, planned as usual (an echo that is missed costs reads, never a wrong
write).

The worker records a write with its entity's settlement, but the target may send the
event about it before then (even before the write returns). A writer whose target does
that (``WriteIntents``) has the state each write will leave recorded just before the
write, as an intent (``record_intents``, its own rows of the link table): the echo read
takes the intents with the recorded write, so such an event is known for ours all the
same, and so is a late event of the write before. An intent older than the recorded
write is history (a write that failed, then one that went through), and is not read.

The digest read with the claim is a snapshot: the opposite direction may write the entity
between the claim and a write of this one (it settles a change of its own), and the
source read in between may then show its half-written state. A write of the claimed
entity is therefore made only while what the opposite direction wrote is still what the
claim read (``Claimed``, checked with the intent); otherwise the entity is retried, and
its next claim reads the new digest.

A reconcile run of the opposite direction holds no inbox event and records its writes
only when it ends, so neither shows a write it has in flight (one of several requests
sent). Its writer (``RunIntents``, upstream's) records intents before each write as well,
and a write is refused too while the opposite direction has an intent for the entity
newer than its settled write and younger than ``IN_FLIGHT_BOUND``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from sync_core.directory.essence import digest
from sync_core.directory.operations import Operation
from sync_core.directory.vocabulary import Direction
from sync_core.engine.ports import WriteIntents
from sync_core.engine.run_log import state_after
from sync_core.errors import TransientError
from sync_core.store import links
from sync_core.store.db import describe
from sync_core.store.models import utcnow

# How long an intent of the opposite direction newer than its settled write counts as a
# write in flight, holding the entity (``unchanged_since_claim``): a write that failed
# leaves its intent behind, never caught up by a settled write, and must not hold the
# entity for ever. A run's write of one entity (its requests, a few seconds at worst,
# retries included) settles well within it; past it, the entity is written as read.
IN_FLIGHT_BOUND = timedelta(seconds=60)


def opposite(direction: Direction) -> Direction:
    return Direction.DOWNSTREAM if direction is Direction.UPSTREAM else Direction.UPSTREAM


# What the opposite direction wrote to an entity: one digest, or every state its writes
# (the last recorded and any in flight) may leave.
Written = str | frozenset[str]


@dataclass(frozen=True, slots=True)
class Claimed:
    """The entity a worker's attempt applies, and what the opposite direction had written
    to it when the claim was read (``written_by_opposite``; empty: nothing). ``since``:
    when it was read (the worker's clock, as the link table's times): a write recorded
    after it was made since, even one that leaves a digest the claim read (a change
    reverted to the state the opposite direction last wrote). ``written`` None: not read,
    the writes are held by ``since`` alone (a reconcile's, ``held_by_run``)."""

    kind: str
    key: str
    written: frozenset[str] | None
    since: datetime | None = field(default=None, compare=False)


# Set by the worker around an attempt whose claim read the echo digest; None elsewhere
# (a reconcile, a dependency synced on the way), where writes are not held to it.
_CLAIMED: ContextVar[Claimed | None] = ContextVar("claimed_entity", default=None)


# Set by a reconcile around its writes: when it began to read the source.
_RUN: ContextVar[datetime | None] = ContextVar("run_hold", default=None)


@contextmanager
def held_by_run(since: datetime) -> Iterator[None]:
    """Within: a reconcile's writes are held as a claim's are, each entity to the run's
    read of the source, which started at ``since``: an entity the opposite direction
    wrote (or began to write) since may have been read half written. Held by ``since``
    alone, not by digests: the opposite direction's writes read for the run
    (``every_write_by_opposite``, one digest per entity) are not those the hold reads
    (``written_by_opposite``: every row naming the entity, a renamed key's two; none
    once this direction wrote it), and any write after ``since`` moved its row's time."""
    token = _RUN.set(since)
    try:
        yield
    finally:
        _RUN.reset(token)


@contextmanager
def claimed(kind: str, key: str, written: frozenset[str],
            since: datetime | None = None) -> Iterator[None]:
    """Within: writes of entity (``kind``, ``key``) are held to ``written``, read at
    ``since`` (``intend``)."""
    token = _CLAIMED.set(Claimed(kind, key, written, since))
    try:
        yield
    finally:
        _CLAIMED.reset(token)


def unchanged_since_claim(conn: Connection, direction: Direction, claim: Claimed) -> bool:
    """Whether the opposite direction's writes to the claimed entity are still those its
    claim read (a settlement of the opposite direction's since would differ), and none is
    in flight (an intent newer than its settled write, younger than ``IN_FLIGHT_BOUND``:
    a run's write of several requests, read between them)."""
    if claim.written is not None:
        now = written_by_opposite(conn, direction, [(claim.kind, claim.key)])
        if now.get((claim.kind, claim.key), frozenset()) != claim.written:
            return False
    # A write recorded since the claim (``links.written_since``), or one in flight.
    return not links.in_flight(conn, direction=opposite(direction), kind=claim.kind,
                               target_id=claim.key, after=utcnow() - IN_FLIGHT_BOUND,
                               since=claim.since)


def written_by_opposite(conn: Connection, direction: Direction,
                        entities: Iterable[tuple[str, str]]
                        ) -> dict[tuple[str, str], frozenset[str]]:
    """For (kind, key) entities of ``direction``'s source, the essence digests the opposite
    direction's last writes left on them (only those that have one), unless ``direction``
    itself wrote for the entity since: the state the opposite wrote was then replaced by
    a change from this side, and the same state seen again is a real change back (a
    member moved to B, to C through upstream, then to B again), never an echo.

    With the recorded write, the writes the opposite direction has started since
    (``record_intents``): a target may call a write back before the write's entity has
    settled (and recorded it), and the callback must be known for ours all the same."""
    return links.echo_digests_by_target(conn, direction=opposite(direction),
                                        entities=entities, superseded_by=direction)


def record_intents(conn: Connection, direction: Direction, rows: Iterable[links.LinkRow],
                   now: datetime) -> None:
    """Before ``direction`` writes: the state each write will leave (its essence digest
    and target id), for the opposite direction's echo check until the write settles."""
    links.record(conn, direction=links.intents_of(direction), rows=rows, now=now)


def is_echo(essence: Any, written: Written | None) -> bool:
    """Whether a source state with this essence is what was written (``written``: one
    digest, or any of several)."""
    if written is None:
        return False
    if isinstance(written, str):
        return digest(essence) == written
    return digest(essence) in written


def every_write_by_opposite(conn: Connection, direction: Direction) -> dict[tuple[str, str], str]:
    """``written_by_opposite`` for every entity of ``direction``'s source (a reconcile)."""
    return links.every_digest_by_target(conn, direction=opposite(direction),
                                        superseded_by=direction)


async def intend(writer: WriteIntents, essence: Callable[[str, str], Any],
                 op: Operation) -> None:
    """Before ``op`` (references resolved) is sent by a ``WriteIntents`` writer: the state
    it will leave (``essence``, by kind and key, as ``run_log.written`` takes it),
    recorded where the opposite direction's echo check reads it, since the target may
    call the write back before the write's entity settles (or its run ends) and the
    write is recorded. A write whose target id only the write decides (a create the
    target numbers) is left out: the writer records it once it has the id. A write of the
    claimed entity (``claimed``) is held to the claim: the writer refuses it (a
    TransientError) when the opposite direction has written the entity since; a delete
    of it too, whose row (no digest) is then only checked, never recorded."""
    target = writer.intended_target(op)
    if target is None:
        return
    value = state_after(essence, replace(op, target=target))
    held = _held(op)
    if value is None and held is None:
        return
    # A delete leaves no state to record, but is held all the same (a half-written read
    # may show a member with no department: one that has left).
    await writer.intend([links.LinkRow(str(op.kind), op.key, target,
                                       None if value is None else digest(value))], held)


def _held(op: Operation) -> Claimed | None:
    """The claim a write of ``op`` is held to: the worker's, for the entity it claimed;
    a reconcile's, for every entity it writes; None otherwise."""
    claim = _CLAIMED.get()
    if claim is not None and (claim.kind, claim.key) == (op.kind, op.key):
        return claim
    since = _RUN.get()
    return None if since is None else Claimed(str(op.kind), op.key, None, since)


class RunIntents:
    """``WriteIntents`` for the reconcile runs of a direction whose writer records none
    itself (upstream's: its worker holds an inbox event about each entity while it
    writes, which the opposite direction's hold sees; a run holds none, and records its
    writes when it ends). Before each write whose target id is known, the state it will
    leave, under the direction's intents: the opposite direction's echo read then knows
    the write's events for ours, and its hold (``unchanged_since_claim``) sees the write
    in flight. The run's own writes are not held (``claim`` is ignored): the conflict
    rule has the opposite direction wait for this one. Given only when both directions
    run here: nothing would read the intents otherwise."""

    def __init__(self, engine: Engine, direction: Direction) -> None:
        self.engine = engine
        self.direction = direction

    def intended_target(self, op: Operation) -> str | None:
        return op.target

    def _record(self, rows: Sequence[links.LinkRow]) -> None:
        with self.engine.begin() as conn:
            record_intents(conn, self.direction, rows, utcnow())

    async def intend(self, rows: Sequence[links.LinkRow], claim: Claimed | None = None) -> None:
        """Record ``rows`` (a delete's, with no digest, leaves no state: not recorded);
        TransientError when they cannot be, and the writes wait."""
        rows = [row for row in rows if row.essence_hash is not None]
        if not rows:
            return
        try:
            await asyncio.to_thread(self._record, rows)
        except SQLAlchemyError as exc:
            raise TransientError(f"the write intent could not be recorded: {describe(exc)}",
                                 remote="database", maybe_applied=False) from exc
