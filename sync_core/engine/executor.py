"""Carry out planned operations through a direction's ``TargetWriter``. Not supposed to
raise: each operation gets an ``Outcome``; only ``StopSync`` (credentials refused, dry run
breached) aborts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from sync_core.directory.operations import (
    Action,
    Operation,
    UnresolvedDepartment,
    resolve_refs,
)
from sync_core.engine.ports import TargetWriter
from sync_core.errors import MissingDepartment, StopSync, SyncError, UnfitError

log = logging.getLogger(__name__)

# Called with an operation just before its requests are sent.
BeforeWrite = Callable[[Operation], Awaitable[None]]


class ItemStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"  # dry run: would be applied


@dataclass(frozen=True, slots=True)
class Outcome:
    op: Operation
    status: ItemStatus
    error: SyncError | None = None
    # Failed after some of its requests reached the target (a create whose follow-up
    # failed): what reached the target, e.g. "written to <remote> as <id>". The entity
    # exists there, so it is counted and linked as written, and the next sync completes it.
    written: str | None = None

    @property
    def error_text(self) -> str | None:
        if self.error is None:
            return None
        text = f"{type(self.error).__name__}: {self.error}"
        return f"{self.written}, then failed: {text}" if self.written else text

    @property
    def wrote(self) -> bool:
        """Whether the target holds this operation's write (all of it, or a part)."""
        return self.status is ItemStatus.APPLIED or self.written is not None


def _targeted(op: Operation, made: Mapping[str, str]) -> Operation:
    """``op`` with the id its create was given as its target (unchanged otherwise)."""
    if op.target is None and op.key in made:
        return replace(op, target=made[op.key])
    return op


def unapplied(op: Operation, remote: str | None = None) -> Outcome:
    """What an operation amounts to without running it (dry runs, no-op plans); values
    that cannot fit the target (``remote``) fail, whatever else is planned."""
    if op.unfit:
        return _unfit(op, ItemStatus.PLANNED if op.writes else ItemStatus.FAILED, remote)
    if op.action is Action.SKIP:
        return Outcome(op, ItemStatus.SKIPPED)
    if not op.writes:
        return Outcome(op, ItemStatus.UNCHANGED)
    return Outcome(op, ItemStatus.PLANNED)


def _unfit(op: Operation, status: ItemStatus, remote: str | None) -> Outcome:
    """An operation that carries values the target cannot take (whatever else it wrote
    stays written): one error naming each value and the limit."""
    return Outcome(op, status, UnfitError("; ".join(op.unfit), remote=remote))


class Executor:
    """``ids`` maps a source department key (str) → its target id. It is filled as
    departments are created or looked up, so later operations can resolve their refs."""

    def __init__(self, writer: TargetWriter) -> None:
        self._writer = writer

    async def apply(self, ops: Sequence[Operation],
                    ids: MutableMapping[str, str] | None = None, *,
                    before: BeforeWrite | None = None) -> list[Outcome]:
        known: MutableMapping[str, str] = {} if ids is None else ids
        return [await self.apply_one(op, known, before=before) for op in ops]

    async def apply_one(self, op: Operation, ids: MutableMapping[str, str], *,
                        sent: int = 0, created: str | None = None,
                        before: BeforeWrite | None = None) -> Outcome:
        """``sent``: how many of the leading requests were already carried out (a user
        created by ``create_users``, ``created`` its target id); the rest are sent here.
        An operation that creates its entity comes out with the new id as its target.
        ``before``: called with the operation as it will be sent (references resolved)
        before its first request; what it raises fails the operation unwritten."""
        if not op.writes:
            return self.unapplied(op)
        made: dict[str, str] = {} if created is None else {op.key: created}
        try:
            if op.needs:
                await self._writer.look_up(op.needs, ids)
                op = resolve_refs(op, ids)
            if before is not None and sent < len(op.requests):
                await before(_targeted(op, made))  # a batch's create: the id it was given
            for request in op.requests[sent:]:
                await self._writer.write(request, ids, made)
                sent += 1
            op = _targeted(op, made)
        except StopSync:
            raise
        except UnresolvedDepartment as exc:
            missing = tuple(d for d in op.needs if d not in ids)
            return Outcome(op, ItemStatus.FAILED, MissingDepartment(
                str(exc), departments=missing, remote=self._writer.remote))
        except SyncError as exc:
            log.warning("%s %s %s failed: %s", op.kind, op.key, op.action, exc)
            if not sent:
                return Outcome(op, ItemStatus.FAILED, exc)
            op = _targeted(op, made)
            target = f" as {op.target}" if op.target is not None else ""
            return Outcome(op, ItemStatus.FAILED, exc,
                           written=f"written to {self._writer.remote}{target}")
        if op.unfit:
            return _unfit(op, ItemStatus.FAILED, self._writer.remote)
        return Outcome(op, ItemStatus.APPLIED)

    def unapplied(self, op: Operation) -> Outcome:
        return unapplied(op, self._writer.remote)

    def batchable(self, op: Operation) -> bool:
        """Whether ``create_users`` may carry ``op``'s first request."""
        return self._writer.batchable(op)

    async def create_users(self, ops: Sequence[Operation]) -> list[tuple[int, str | None]]:
        """Create the users of ``ops`` (each ``batchable``, at most the writer's
        ``batch_limit``) with one batch call instead of one call each; the same bodies, so
        the same users. Answers, per op, how many of its requests were carried out (1 or
        0) and the id created, for ``apply_one(op, ids, sent=..., created=...)`` to send
        the rest."""
        return await self._writer.create_batch(ops)
