"""An operator's "sync this object now": one entity, named by its upstream source key (as
the ops route and the console take it), synced in every direction that runs here.

Order, when both run: upstream first, then downstream, which re-reads the other side
after it. That is the conflict rule's order for two changes waiting at once (the source
of upstream first): where the two sides differ, upstream's source wins; what only the
downstream source holds (an account whose webhooks were lost) is then pushed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.directory.vocabulary import Direction, Kind
from sync_core.engine.echo import Written
from sync_core.engine.entity_sync import EntityResult, EntitySync

# (kind, upstream source key) → the downstream source key of the same entity, or None.
Resolve = Callable[[Kind, str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Step:
    direction: Direction
    result: EntityResult | str  # a string: nothing synced, and why


class SyncNow:
    def __init__(self, upstream: EntitySync | None, downstream: EntitySync | None,
                 resolve: Resolve | None = None) -> None:
        """``upstream`` / ``downstream``: the directions that run (at least one);
        ``resolve`` is needed with ``downstream``."""
        if upstream is None and downstream is None:
            raise ValueError("sync-now needs a direction")
        if downstream is not None and resolve is None:
            raise ValueError("downstream sync-now needs a resolver")
        self.upstream, self.downstream, self.resolve = upstream, downstream, resolve

    @property
    def syncs(self) -> tuple[EntitySync, ...]:
        return tuple(s for s in (self.upstream, self.downstream) if s is not None)

    async def run(self, kind: Kind, key: str, payloads: Sequence[Mapping[str, Any]], *,
                  echo_of: Written | None = None) -> list[Step]:
        """Each running direction in turn. ``echo_of``: the upstream echo check's digest
        (the downstream step plans against its target all the same)."""
        steps: list[Step] = []
        if self.upstream is not None:
            steps.append(Step(Direction.UPSTREAM,
                              await _sync(self.upstream, kind, key, payloads, echo_of)))
        if self.downstream is not None and self.resolve is not None:
            source_key = await self.resolve(kind, key)
            if source_key is None:
                where = self.downstream.ports.source_name
                steps.append(Step(Direction.DOWNSTREAM,
                                  f"no {where} {kind} maps to {key}: nothing to push"))
            else:
                steps.append(Step(Direction.DOWNSTREAM,
                                  await _sync(self.downstream, kind, source_key, (), None)))
        return steps


async def _sync(sync: EntitySync, kind: Kind, key: str, payloads: Sequence[Mapping[str, Any]],
                echo_of: Written | None) -> EntityResult:
    if kind is Kind.USER:
        return await sync.sync_user(key, payloads, echo_of=echo_of)
    return await sync.sync_department(key, payloads, echo_of=echo_of)
