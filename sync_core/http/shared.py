"""Identical reads made side by side share one request.

Entity sync reads the source and the target of one entity at the same moment; where both
readers ask a remote for the same record (downstream: the Authing user, re-read as the
source and looked up for the userid it holds), the second asks nothing and takes the
first's answer. Only inside ``shared_reads()``, which entity sync opens around its read
phase (no write happens in it): outside it every read goes to the remote, so a read made
after a write always sees that write.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Read key → the task reading it, for the read phase open in this context (None: no
# phase). Tasks started inside the phase (gather) copy the context: the same dict.
_PHASE: contextvars.ContextVar[dict[Hashable, asyncio.Future[Any]] | None] = \
    contextvars.ContextVar("shared_reads", default=None)


@contextlib.contextmanager
def shared_reads() -> Iterator[None]:
    """A read phase: identical ``read_once`` calls inside it share one read."""
    token = _PHASE.set({})
    try:
        yield
    finally:
        _PHASE.reset(token)


async def read_once(key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, or, inside a read phase that already made the read named ``key``
    (running or done), its answer or its error. A caller cancelled while it waits leaves
    the read running for the others."""
    phase = _PHASE.get()
    if phase is None:
        return await read()
    task = phase.get(key)
    if task is None:
        task = phase[key] = asyncio.ensure_future(read())
        task.add_done_callback(_observed)
    return await asyncio.shield(task)


def _observed(task: asyncio.Future[Any]) -> None:
    """Every waiter may be gone (cancelled): the error is theirs, not the loop's to log."""
    if not task.cancelled():
        task.exception()
