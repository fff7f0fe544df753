"""One reconciler per direction behind the entry points of one: ``start`` goes by the
request's direction, ``approve`` by the run's, ``wait`` and ``interrupt`` cover all."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sqlalchemy import Engine

from sync_core.engine.reconciler import Progress, Reconciler, RequestError, RunRequest
from sync_core.store import runs


class Reconcilers:
    def __init__(self, engine: Engine, by_direction: Mapping[str, Reconciler]) -> None:
        self.engine = engine
        self.by_direction = dict(by_direction)

    def _for(self, direction: str) -> Reconciler:
        reconciler = self.by_direction.get(str(direction))
        if reconciler is None:
            runs_here = " and ".join(sorted(self.by_direction))
            raise RequestError(f"the {direction} direction is not running here (this "
                               f"service reconciles {runs_here}: see the direction setting)")
        return reconciler

    def validate(self, request: RunRequest) -> None:
        self._for(request.direction).validate(request)

    def create(self, request: RunRequest) -> int:
        return self._for(request.direction).create(request)

    async def execute(self, run_id: int, request: RunRequest,
                      progress: Progress | None = None) -> None:
        await self._for(request.direction).execute(run_id, request, progress)

    async def start(self, request: RunRequest, progress: Progress | None = None) -> int:
        return await self._for(request.direction).start(request, progress)

    async def approve(self, run_id: int, actor: str = "ops") -> None:
        def direction() -> str | None:
            with self.engine.connect() as conn:
                run = runs.get(conn, run_id)
            return None if run is None else str(run["direction"])

        found = await asyncio.to_thread(direction)
        if found is None:
            raise LookupError(f"no run {run_id}")
        await self._for(found).approve(run_id, actor)

    async def wait(self) -> None:
        for reconciler in self.by_direction.values():
            await reconciler.wait()

    def cancel(self, run_id: int) -> bool:
        """Stop this process's task for ``run_id``, whichever direction runs it."""
        return any([r.cancel(run_id) for r in self.by_direction.values()])

    def interrupt(self, reason: str) -> None:
        for reconciler in self.by_direction.values():
            reconciler.interrupt(reason)
