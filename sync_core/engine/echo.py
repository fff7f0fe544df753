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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sync_core.directory.essence import digest
from sync_core.directory.operations import Operation
from sync_core.directory.vocabulary import Direction
from sync_core.engine.ports import WriteIntents
from sync_core.engine.run_log import state_after
from sync_core.store import links


def opposite(direction: Direction) -> Direction:
    return Direction.DOWNSTREAM if direction is Direction.UPSTREAM else Direction.UPSTREAM


# What the opposite direction wrote to an entity: one digest, or every state its writes
# (the last recorded and any in flight) may leave.
Written = str | frozenset[str]


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
    target numbers) is left out: the writer records it once it has the id."""
    target = writer.intended_target(op)
    if target is None:
        return
    value = state_after(essence, replace(op, target=target))
    if value is not None:
        await writer.intend([links.LinkRow(str(op.kind), op.key, target, digest(value))])
