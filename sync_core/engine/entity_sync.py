"""Incremental sync of one entity through a direction's ports: the worker's unit of work.

An event is a hint. The source reader re-reads the entity (or folds the events' fields when
the source refuses reads) while the target reader reads the target side; the echo check
settles a state the opposite direction wrote itself; the direction's pure planner decides;
the executor applies through the target writer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync_core.directory.operations import Action, Operation
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.echo import Written, intend, is_echo
from sync_core.engine.executor import Executor, ItemStatus, Outcome
from sync_core.engine.ports import DepartmentContents, Hints, Ports, ReadFrom, WriteIntents
from sync_core.engine.run_log import written
from sync_core.errors import (
    ConflictError,
    MissingDepartment,
    NotFoundError,
    PermanentError,
    RestrictedError,
    SyncError,
    UnfitError,
    WaitingForDependency,
)
from sync_core.http.retry import gather_pair
from sync_core.http.shared import shared_reads
from sync_core.store.links import LinkRow

log = logging.getLogger(__name__)

Essences = dict[tuple[str, str], Callable[[], Any]]


@dataclass(frozen=True, slots=True)
class EntityResult:
    kind: Kind
    key: str
    outcomes: tuple[Outcome, ...]
    read_from: ReadFrom
    # Per (kind, key) planned: what the target shows after the write, computed only for
    # the entities that were written (``links``).
    essences: Mapping[tuple[str, str], Callable[[], Any]] = field(default_factory=dict)
    echo: bool = False  # the source state is what the opposite direction last wrote

    def links(self) -> list[LinkRow]:
        return written(self.outcomes, self._essence)

    def _essence(self, kind: str, key: str) -> Any:
        essence = self.essences.get((kind, key))
        return None if essence is None else essence()

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is ItemStatus.FAILED)

    @property
    def blocked(self) -> tuple[Outcome, ...]:
        """Skips that may clear by themselves (a department that still has members)."""
        return tuple(o for o in self.outcomes if o.status is ItemStatus.SKIPPED
                     and o.op.cause is Cause.BLOCKED)

    @property
    def conflicts(self) -> tuple[Outcome, ...]:
        """Skips the planner made to protect an account we do not own."""
        return tuple(o for o in self.outcomes if o.status is ItemStatus.SKIPPED
                     and o.op.cause is Cause.CONFLICT)

    @property
    def invalid(self) -> tuple[Outcome, ...]:
        """Skips for a source record that breaks a rule of the target (fixed at the source)."""
        return tuple(o for o in self.outcomes if o.status is ItemStatus.SKIPPED
                     and o.op.cause is Cause.INVALID)

    @property
    def writes(self) -> int:
        return sum(len(o.op.requests) for o in self.outcomes if o.status is ItemStatus.APPLIED)

    def summary(self) -> str:
        parts = []
        for o in self.outcomes:
            text = f"{o.op.kind} {o.op.key}: {o.op.action} [{o.status}]"
            if o.op.changes:
                text += " (" + ", ".join(c.field for c in o.op.changes) + ")"
            if o.op.reason:
                text += f": {o.op.reason}"
            if o.error is not None:
                text += f": {o.error_text}"
            parts.append(text)
        head = f"from {self.read_from}"
        if self.echo:
            return f"{head}; echo of our own write: nothing to do"
        return f"{head}; " + "; ".join(parts) if parts else f"{head}; nothing to do"


@dataclass(slots=True)
class UserRead:
    """Both sides of one user as read: ``desired`` (source, None = gone), ``actual``
    (target, None = absent), and the outcomes already applied on the way (``done``: a
    create announced as new that the target refused). ``announced``: the source said the
    user is new."""

    desired: Any
    actual: Any
    read_from: ReadFrom
    done: list[Outcome]
    announced: bool


class EntitySync:
    """One direction of one binding, one entity at a time. ``prepare`` (the target's
    bootstrap) completes the binding once; it is then passed down to every read and plan."""

    def __init__(self, ports: Ports, *, trust_echoes: bool = True) -> None:
        """``trust_echoes``: settle an echo unplanned (saves the target read). False: an
        echo is still planned against the target, which then writes only where the target
        differs; a direction whose target the opposite direction may have changed since
        (a crossing write) converges that way instead of keeping the divergence."""
        self.ports = ports
        self.trust_echoes = trust_echoes
        self.binding = ports.binding
        self.source, self.target, self.planner = ports.source, ports.target, ports.planner
        self._executor = Executor(ports.writer)
        # Source department key → target id, learnt from reads and creates. Saves a
        # target read per user event; dropped for a department when its own event is
        # handled, and wholesale whenever an entity fails (a stale id is one cause).
        self._dept_ids: dict[str, str] = {}
        self._preparing = asyncio.Lock()

    async def prepare(self) -> None:
        # The worker and a run of the same process prepare at start-up side by side.
        async with self._preparing:
            self.binding = await self.target.bootstrap(self.ports.binding)

    # -- users --------------------------------------------------------------------------

    async def sync_user(self, key: str, payloads: Sequence[Mapping[str, Any]], *,
                        echo_of: Written | None = None) -> EntityResult:
        """``echo_of``: the essence digest the opposite direction last wrote to this entity
        (``engine.echo``); a source state with that essence is settled unplanned."""
        hints = self.source.hints(Kind.USER, payloads)
        if await self.target.write_back_echo(Kind.USER, key, hints):
            return EntityResult(Kind.USER, key, (), ReadFrom.EVENT, echo=True)
        current = hints.renamed_to or key
        essences: Essences = {}
        read = await self._read_user(key, current, hints, essences, echo_of)
        if isinstance(read, EntityResult):
            return read
        return await self._sync_read_user(read, current, essences)

    async def _read_user(self, key: str, current: str, hints: Hints,
                         essences: Essences, echo_of: Written | None
                         ) -> EntityResult | UserRead:
        """Both sides of one user, or the result when nothing more is to be done (an echo,
        or a user announced as new whose create went through)."""
        done: list[Outcome] = []
        if hints.renamed_to is None and hints.announced:
            desired, read_from = await self.source.read_user(current, key, hints)
            if self._echo(Kind.USER, desired, echo_of):
                return EntityResult(Kind.USER, current, (), read_from, echo=True)
            if desired is not None:
                # Announced as new: the create is itself the existence check (the target
                # keeps the source key unique), so only a refused create reads the target.
                outcomes = await self._plan_user(desired, None, current, essences)
                if not create_failed(outcomes, PermanentError):
                    return self._result(EntityResult(Kind.USER, current, tuple(outcomes),
                                                     read_from, essences))
                done = [o for o in outcomes if o.status is ItemStatus.APPLIED]
            actual = await self.target.user([key], self.binding)
            return UserRead(desired, actual, read_from, done, announced=True)
        # The source's record and the target's are independent reads: made side by side,
        # they cost one round trip of latency instead of two or three.
        with shared_reads():  # both may ask one remote for the same record
            (desired, read_from), actual = await gather_pair(
                self.source.read_user(current, key, hints),
                self.target.user([key, current] if hints.renamed_to else [key], self.binding))
        if self._echo(Kind.USER, desired, echo_of):
            return EntityResult(Kind.USER, current, (), read_from, echo=True)
        return UserRead(desired, actual, read_from, done, announced=False)

    async def _sync_read_user(self, read: UserRead, current: str,
                              essences: Essences) -> EntityResult:
        """Plan and apply the user both sides of ``read`` show; a direction with identity
        moves (renames) overrides this hook."""
        desired, actual = read.desired, read.actual
        outcomes = read.done + await self._plan_user(desired, actual, current, essences)
        if actual is None and desired is not None and create_failed(outcomes, ConflictError):
            # Only a create that collides pays for the search: the account in the way is
            # handed to the planner, which refuses to take it over unless adopt_existing.
            unmanaged = await self.target.colliding_user(desired, self.binding)
            if unmanaged is not None:
                done = [o for o in outcomes if o.status is ItemStatus.APPLIED]
                outcomes = done + await self._plan_user(desired, unmanaged, current, essences)
        return self._result(EntityResult(Kind.USER, current, tuple(outcomes), read.read_from,
                                         essences))

    async def _plan_user(self, desired: Any, actual: Any, key: str,
                         essences: Essences) -> list[Outcome]:
        index, source = await self._index(
            self.planner.user_departments(desired, actual, self.binding))
        essences[(Kind.USER, key)] = self._essence(Kind.USER, desired, actual)
        for dept_key, dept in source.items():
            essences[(Kind.DEPARTMENT, dept_key)] = self._essence(Kind.DEPARTMENT, dept, None)
        ops = self.planner.plan_user(desired, actual, self.binding, index, key)
        return await self._apply(ops, index, essences)

    async def _apply(self, ops: Sequence[Operation], index: Any,
                     essences: Essences) -> list[Outcome]:
        ids = self.planner.seed(index)
        writer = self.ports.writer
        before = functools.partial(intend, writer, functools.partial(_essence_of, essences)) \
            if isinstance(writer, WriteIntents) else None
        outcomes = await self._executor.apply(ops, ids, before=before)
        self._dept_ids.update(ids)
        return [await self._judge_missing(o) for o in outcomes]

    async def _judge_missing(self, outcome: Outcome) -> Outcome:
        """A department the operation needs is not in the target: permanent only when the
        source says it is gone; otherwise its create is still on its way (retried by the
        source, or lost and left to the reconciler) and the entity waits."""
        error = outcome.error
        if not isinstance(error, MissingDepartment):
            return outcome
        source = self.ports.source_name
        for key in error.departments:
            try:
                gone = not await self.source.present(Kind.DEPARTMENT, key)
            except SyncError:
                continue  # refused or failing: not known to be gone
            if gone:
                return Outcome(outcome.op, outcome.status, MissingDepartment(
                    f"{source} department {key} is gone ({source} answers not found)",
                    departments=error.departments, remote=source.lower()))
        shown = ", ".join(error.departments)
        return Outcome(outcome.op, outcome.status, WaitingForDependency(
            f"waiting for {source} department {shown}: not in {self.ports.target_name} yet"))

    def _result(self, result: EntityResult) -> EntityResult:
        if result.failures:
            self._dept_ids.clear()
        return result

    def _essence(self, kind: Kind, desired: Any, actual: Any) -> Callable[[], Any]:
        return functools.partial(self.planner.essence, kind, desired, actual, self.binding)

    def _echo(self, kind: Kind, desired: Any, echo_of: Written | None) -> bool:
        if echo_of is None or desired is None or not self.trust_echoes:
            return False
        return is_echo(self.planner.source_essence(kind, desired), echo_of)

    # -- departments --------------------------------------------------------------------

    async def sync_department(self, key: str, payloads: Sequence[Mapping[str, Any]], *,
                              echo_of: Written | None = None) -> EntityResult:
        return await self._sync_department(key, payloads, echo_of, 0)

    async def _sync_department(self, key: str, payloads: Sequence[Mapping[str, Any]],
                               echo_of: Written | None, depth: int) -> EntityResult:
        """``depth``: how deep in ordering conflicts this sync was called to clear the way
        (``_clear_the_way``); at ``_MAX_DEPTH`` it no longer clears, it only reports."""
        hints = self.source.hints(Kind.DEPARTMENT, payloads)
        if await self.target.write_back_echo(Kind.DEPARTMENT, key, hints):
            return EntityResult(Kind.DEPARTMENT, key, (), ReadFrom.EVENT, echo=True)
        self._dept_ids.pop(key, None)
        desired, read_from = await self.source.read_department(key, hints)
        if self._echo(Kind.DEPARTMENT, desired, echo_of):
            return EntityResult(Kind.DEPARTMENT, key, (), read_from, echo=True)
        actual = await self.target.department(key, self.binding)
        parent = self.planner.parent(desired) if desired is not None else None
        index, source = await self._index(({parent} if parent else set(), {}))
        ops = self.planner.plan_department(desired, actual, self.binding, index, key)
        outcomes = await self._apply(ops, index, {
            (Kind.DEPARTMENT, key): self._essence(Kind.DEPARTMENT, desired, actual)})
        if desired is None:
            self._dept_ids.pop(key, None)
        essences: dict[tuple[str, str], Callable[[], Any]] = {
            (Kind.DEPARTMENT, k): self._essence(Kind.DEPARTMENT, d, None)
            for k, d in source.items()}
        essences[(Kind.DEPARTMENT, key)] = self._essence(Kind.DEPARTMENT, desired, actual)
        result = EntityResult(Kind.DEPARTMENT, key, tuple(outcomes), read_from, essences)
        if depth < _MAX_DEPTH:
            cleared = await self._clear_the_way(desired, actual, result, depth)
            if cleared:
                again = await self._sync_department(key, (), None, _MAX_DEPTH)
                result = _joined(cleared, result, again)
        return self._result(result)

    async def _clear_the_way(self, desired: Any, actual: Any, result: EntityResult,
                             depth: int) -> list[EntityResult]:
        """An ordering conflict is not permanent: the events that would resolve it are
        late or lost, so the source's current tree resolves it now. Returns the syncs made
        (the department is then planned once more), none when there is no such conflict.

        - A move the target refused (under its own descendant there, as the target still
          has it; both targets refuse that): the new parent's source ancestors, then the
          parent, are synced top-down; each then sits where the source has it, so the
          department is no longer above its new parent.
        - A delete blocked by what the department still holds: its members and child
          departments are synced (gone or moved, per the source)."""
        if desired is not None and any(_refused_move(o) for o in result.outcomes):
            chain = await self._source_ancestors(self.planner.parent(desired))
            if result.key in chain:
                return []  # the source's own reads disagree: nothing to go by
            # Placed top-down, none of them can meet the same conflict: they clear no more.
            return [await self._sync_department(k, (), None, _MAX_DEPTH) for k in chain]
        if desired is None and actual is not None and result.blocked \
                and isinstance(self.target, DepartmentContents):
            users, children = await self.target.contents(actual, self.binding)
            done = [await self._sync_department(k, (), None, depth + 1) for k in children]
            return done + [await self._clear_member(result.key, k) for k in users]
        return []

    async def _clear_member(self, department: str, key: str) -> EntityResult:
        """A member a blocked delete still holds, synced. One the source will not let us
        read (reads refused, no event about it in hand) is left to its own events, a
        delete or a move, which the department waits for with backoff rather than for
        the read cool-down."""
        try:
            return await self.sync_user(key, ())
        except RestrictedError as exc:
            raise WaitingForDependency(
                f"department {department} still holds {key}, which cannot be read now "
                f"({exc.message}): waiting for its own changes", maybe_applied=False,
                remote=exc.remote) from exc

    async def _source_ancestors(self, key: str | None) -> list[str]:
        """``key`` and its ancestors in the source below the root, top-down."""
        root_key = self.planner.root(self.binding)[0]
        chain: list[str] = []
        while key and key != root_key and key not in chain and len(chain) < _MAX_DEPTH:
            chain.append(key)
            record = await self.source.department(key)
            key = self.planner.parent(record) if record is not None else None
        return chain[::-1]

    # -- the department index -------------------------------------------------------------

    async def _index(self, needs: tuple[set[str], dict[str, str]]
                     ) -> tuple[Any, dict[str, Any]]:
        """Target ids for the source departments an operation names, and the source's own
        record of any that the target lacks (with their missing ancestors), so the planner
        can create them parent-first."""
        wanted, known = needs
        root_key, root_id = self.planner.root(self.binding)
        ids = {**{d: self._dept_ids[d] for d in wanted if d in self._dept_ids}, **known,
               root_key: root_id}
        source: dict[str, Any] = {}
        pending = [d for d in wanted if d not in ids]
        while pending:
            dept_key = pending.pop()
            if dept_key in ids or dept_key in source:
                continue
            target_id = await self.target.department_id(dept_key, self.binding)
            if target_id is not None:
                ids[dept_key] = target_id
                continue
            dept = await self.source.department(dept_key)
            if dept is None:
                continue  # stays unresolved: the executor reports which department is missing
            source[dept_key] = dept
            parent = self.planner.parent(dept)
            if parent and parent not in ids:
                pending.append(parent)
        return self.planner.index(ids, source), source


def _essence_of(essences: Essences, kind: str, key: str) -> Any:
    essence = essences.get((kind, key))
    return None if essence is None else essence()


_MAX_DEPTH = 16  # deeper than any tree a target allows (the deepest: 15 levels)


def _refused_move(outcome: Outcome) -> bool:
    """A department move the target refused as invalid (not as missing: that waits)."""
    return (outcome.status is ItemStatus.FAILED and outcome.op.kind is Kind.DEPARTMENT
            and outcome.op.action is Action.MOVE
            and isinstance(outcome.error, PermanentError)
            and not isinstance(outcome.error, NotFoundError))


def _joined(cleared: Sequence[EntityResult], first: EntityResult,
            again: EntityResult) -> EntityResult:
    """One result for a department planned twice around the syncs that cleared its way:
    what those applied, what the first plan applied, and the second plan."""
    outcomes = [o for r in cleared for o in r.outcomes]
    outcomes += [o for o in first.outcomes if o.status is ItemStatus.APPLIED]
    essences = {k: v for r in (*cleared, first, again) for k, v in r.essences.items()}
    return EntityResult(again.kind, again.key, (*outcomes, *again.outcomes),
                        again.read_from, essences)


def create_failed(outcomes: Sequence[Outcome], error: type[Exception]) -> bool:
    """Whether a user create failed with ``error``. Any PermanentError after a create made
    without reading first means the user may exist after all (the message need not say so
    in a way we recognise): the caller reads the target and plans again."""
    return any(o.status is ItemStatus.FAILED and o.op.kind is Kind.USER
               and o.op.action is Action.CREATE and isinstance(o.error, error)
               and not isinstance(o.error, UnfitError)  # created; a value did not fit
               for o in outcomes)
