"""The echo check: is the state an event shows the echo of our own write?

A write by one direction makes the other side send an event about it (a callback, a
webhook). Before it plans, entity sync asks here whether the source state
it read is exactly what the opposite direction last wrote to that entity; if so the event
is settled without a plan. The answer comes from the link table, by target id, comparing
essence digests (``directory.essence``). A failed read answers "no": planning an echo
costs reads, never a wrong write, as the plan then finds nothing to change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine

from sync_core.directory.essence import digest
from sync_core.directory.vocabulary import Direction, Kind
from sync_core.store import links

log = logging.getLogger(__name__)


def opposite(direction: Direction) -> Direction:
    return Direction.DOWNSTREAM if direction is Direction.UPSTREAM else Direction.UPSTREAM


class EchoCheck:
    def __init__(self, engine: Engine, direction: Direction) -> None:
        self.engine = engine
        self.direction = direction

    async def is_echo(self, kind: Kind, key: str, essence: Any) -> bool:
        """``key``: the entity's key on this direction's source side, which is the target
        side of the opposite direction; ``essence``: the source state, as that side shows
        it."""
        wanted = digest(essence)
        if wanted is None:
            return False
        try:
            return await asyncio.to_thread(self._read, kind, key, wanted)
        except Exception as exc:  # noqa: BLE001 - a database outage must not stop the sync
            log.warning("echo check for %s %s failed (%s); planning it", kind, key,
                        type(exc).__name__)
            return False

    def _read(self, kind: Kind, key: str, wanted: str) -> bool:
        with self.engine.connect() as conn:
            return links.last_wrote(conn, direction=opposite(self.direction), kind=str(kind),
                                    target_id=key, essence_hash=wanted)
