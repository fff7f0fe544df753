"""The echo check: is the state an event shows the echo of our own write?

A write by one direction makes the other side send an event about it (a callback, a
webhook). The worker reads, on the connection that claimed the entities and right after
the claim, what the opposite direction last wrote to each of them (the link table, by
target id: one statement per claim, not per entity); entity sync then compares that
digest with the essence of the source state it read, before it plans. Equal: the event is
our own write coming back, and it is settled with nothing planned. No row, or another
state: a real change, planned as usual (an echo that is missed costs reads, never a wrong
write).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from sync_core.directory.essence import digest
from sync_core.directory.vocabulary import Direction
from sync_core.store import links


def opposite(direction: Direction) -> Direction:
    return Direction.DOWNSTREAM if direction is Direction.UPSTREAM else Direction.UPSTREAM


def written_by_opposite(conn: Connection, direction: Direction,
                        entities: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For (kind, key) entities of ``direction``'s source, the essence digests the opposite
    direction's last writes left on them (only those that have one)."""
    return links.digests_by_target(conn, direction=opposite(direction), entities=entities)


def is_echo(essence: Any, written: str | None) -> bool:
    """Whether a source state with this essence is what was last written (``written``)."""
    return written is not None and digest(essence) == written
