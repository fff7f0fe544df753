"""The ports a direction plugs into the engine: a direction is a ``SourceReader``, a
``TargetReader`` and a ``TargetWriter`` plus a ``Planner`` (its mapping), under a binding.

The engine (entity sync, executor, worker, reconciler) sees records only through these
protocols: it never names a platform, an endpoint or a field. Records are opaque to it
(``Any``); the planner is the one that knows their shape. ``sync_core.runtime`` wires the
platforms into these ports, one ``Ports`` per direction of a binding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sync_core.directory.operations import Mode, Operation
from sync_core.directory.vocabulary import Direction, Kind

if TYPE_CHECKING:
    from sync_core.binding import Binding
    from sync_core.engine.echo import Claimed
    from sync_core.store.links import LinkRow


class ReadFrom(StrEnum):
    """Where the source state of an entity sync came from."""

    API = "api"  # re-read from the source's API
    EVENT = "event"  # the events' own fields (the API refused the read)


@dataclass(frozen=True, slots=True)
class Hints:
    """What the events of one entity say before anything is read: the key it was renamed
    to (if any), whether it was announced as new, and the parsed events, oldest first."""

    events: tuple[Any, ...] = ()
    renamed_to: str | None = None
    announced: bool = False


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """The whole source. ``problems``: why it may be incomplete (then nothing is deleted);
    ``notes``: remarks for the run record."""

    users: tuple[Any, ...]
    departments: tuple[Any, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # Some problem was a transient failure (an outage): the same read may succeed later.
    retryable: bool = False
    # Source records that could not be read (key, error naming the place): failed items.
    failed: tuple[tuple[str, str], ...] = ()
    # What is left to do once the target is read (a file's department paths become the
    # tree beside the target's departments): the finished snapshot, from the target and
    # the binding. None: this snapshot is finished.
    finish: Callable[[TargetSnapshot, Binding], SourceSnapshot] | None = None

    @property
    def complete(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """The whole target; ``root_department_id``: the target's id of the root, if read."""

    users: tuple[Any, ...]
    departments: tuple[Any, ...]
    root_department_id: str | None = None
    notes: tuple[str, ...] = ()  # remarks for the run record (e.g. which reads were used)
    # Target ids of the entities this direction wrote (the link table): the ones a
    # reconcile may delete, when the target holds no mark of ours. None: not given.
    managed: frozenset[tuple[str, str]] | None = None
    # (kind, source key) → the target id this direction recorded writing it (the link
    # table): the pairing a target that holds no mark of ours cannot show. None: not given.
    linked: Mapping[tuple[str, str], str] | None = None


class SourceReader(Protocol):
    """The side a direction reads the desired state from."""

    def hints(self, kind: Kind, payloads: Sequence[Mapping[str, Any]]) -> Hints: ...

    async def read_user(self, key: str, original: str,
                        hints: Hints) -> tuple[Any | None, ReadFrom]:
        """The user ``key`` (renamed from ``original`` when they differ), or None when the
        source confirms it is gone. Raises a TransientError-like error to retry."""
        ...

    async def read_department(self, key: str, hints: Hints) -> tuple[Any | None, ReadFrom]: ...

    async def department(self, key: str) -> Any | None:
        """The department ``key`` if the source can read it now, else None."""
        ...

    async def snapshot(self) -> SourceSnapshot: ...

    async def present(self, kind: Kind, key: str, target: str | None = None) -> bool:
        """Whether ``key`` exists in the source again (re-checked before a staged delete);
        ``target``: the target's id of the entity the delete removes, where the source
        can name another entity mapping to it since."""
        ...


class TargetReader(Protocol):
    """The side a direction writes to, as read."""

    async def bootstrap(self, binding: Binding) -> Binding:
        """Set the target up for the binding (organization, extension fields) and answer
        the binding completed with what only the target knows (its root id)."""
        ...

    async def user(self, keys: Sequence[str], binding: Binding) -> Any | None:
        """The linked user for the first of ``keys`` (source keys) that has one."""
        ...

    async def colliding_user(self, desired: Any, binding: Binding) -> Any | None:
        """An unlinked target user that a create of ``desired`` collides with."""
        ...

    async def department(self, key: str, binding: Binding) -> Any | None: ...

    async def department_id(self, key: str, binding: Binding) -> str | None:
        """The target id of the department linked to source department ``key``."""
        ...

    async def snapshot(self, binding: Binding) -> TargetSnapshot: ...

    async def write_back_echo(self, kind: Kind, key: str, hints: Hints) -> bool:
        """Whether the events (``hints``) only report what this direction itself wrote
        back to the source about ``key`` (the ids the target gave), with the values it
        wrote: nothing the target shows changed, so the entity is settled unread. False
        whenever unsure (an echo missed costs reads, never a write)."""
        ...

    def forget(self) -> None:
        """Drop whatever the reader caches about the target's keys: a run rewrote them."""
        ...


@runtime_checkable
class DepartmentContents(Protocol):
    """A target reader that can list what a department still holds there, so that the
    delete of a department the source removed re-reads those members (a source that only
    removes empty departments has moved or removed them; their own events are late)."""

    async def contents(self, department: Any, binding: Binding
                       ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Source keys of the users and of the child departments the target holds directly
        in ``department`` (a record ``department`` returned); entities without a source
        key (not ours) are left out."""
        ...


class TargetWriter(Protocol):
    """Carries out the requests of planned operations. ``ids`` maps a source department
    key (as str) to its target id; writes that create a department add to it."""

    remote: str
    batch_limit: int  # user creates per batch call
    concurrency: int  # writes in flight during a reconcile

    def batchable(self, op: Operation) -> bool:
        """Whether ``create_batch`` may carry the first request of ``op``."""
        ...

    async def write(self, request: Any, ids: MutableMapping[str, str],
                    made: MutableMapping[str, str]) -> None:
        """Carry out one request. ``made``: what the operation's requests have created so
        far (source key → target id, from the writes' own answers), for later requests of
        the same operation and for the link table."""
        ...

    async def create_batch(self, ops: Sequence[Operation]) -> list[tuple[int, str | None]]:
        """Create the entities of ``ops`` in one call; per op, how many of its requests
        were carried out (1 or 0) and the target id created, when the answer says."""
        ...

    async def look_up(self, keys: Sequence[str], ids: MutableMapping[str, str]) -> None:
        """Fill ``ids`` with the target ids of source departments ``keys``, where found."""
        ...


@runtime_checkable
class WriteIntents(Protocol):
    """A target writer whose target may call a write back to the opposite direction
    before the write's entity settles (and the worker records it): the state each write
    will leave is recorded before the write (``engine.echo.record_intents``), so that the
    opposite direction's echo check knows the callback for ours."""

    def intended_target(self, op: Operation) -> str | None:
        """The target id ``op`` writes to, when it is known before the write (None: it is
        not, a create whose id the target gives)."""
        ...

    async def intend(self, rows: Sequence[LinkRow], claim: Claimed | None = None) -> None:
        """Record ``rows`` (what the writes will leave; a row with no digest, a delete
        of the claimed entity, is only held) before they are made; raises
        TransientError when they cannot be recorded (the writes then wait), or when
        ``claim`` is given and the opposite direction holds the entity or has written it
        since the claim (``engine.echo.unchanged_since_claim``: the source read may show
        its write half done)."""
        ...


class Planner(Protocol):
    """A direction's mapping and pure planner: the only part that knows what the records
    hold. Department keys reach the engine as text; ``index`` builds the planner's own
    identity index (source key → target id) from them."""

    def index(self, ids: Mapping[str, str], source: Mapping[str, Any]) -> Any: ...

    def root(self, binding: Binding) -> tuple[str, str]:
        """The source key and the target id of the root department."""
        ...

    def seed(self, index: Any) -> dict[str, str]:
        """The executor's id map for ``index``."""
        ...

    def plan_user(self, desired: Any, actual: Any, binding: Binding, index: Any,
                  key: str) -> tuple[Operation, ...]: ...

    def plan_department(self, desired: Any, actual: Any, binding: Binding, index: Any,
                        key: str) -> tuple[Operation, ...]: ...

    def plan_all(self, source: SourceSnapshot, target: TargetSnapshot, binding: Binding,
                 mode: Mode) -> tuple[Operation, ...]: ...

    def managed(self, target: TargetSnapshot, binding: Binding) -> int:
        """How many target objects are ours: the base of the deletion guard."""
        ...

    def user_departments(self, desired: Any, actual: Any, binding: Binding,
                         ) -> tuple[set[str], dict[str, str]]:
        """Source departments the user needs, and the target ids the read already gave."""
        ...

    def parent(self, department: Any) -> str | None: ...

    def source_key(self, kind: Kind, record: Any) -> str:
        """The key of a source record."""
        ...

    def linked_key(self, kind: Kind, record: Any) -> str | None:
        """The source key a target record is linked to, if any."""
        ...

    def depths(self, departments: Iterable[Any]) -> dict[str, int]:
        """Depth of each source department (by key) in the source tree."""
        ...

    def essence(self, kind: Kind, desired: Any, actual: Any, binding: Binding) -> Any:
        """What the target will show after the write, in the form ``directory.essence``
        hashes; None for a delete. It may be a function of the applied ``Operation``
        instead, when the write decides part of it (an id the target gives)."""
        ...

    def source_essence(self, kind: Kind, record: Any) -> Any:
        """The source record as the opposite direction would have written it (echo check)."""
        ...


@dataclass(frozen=True, slots=True)
class Ports:
    """One direction of one binding."""

    direction: Direction
    source_name: str  # for people, in messages
    target_name: str
    source: SourceReader
    target: TargetReader
    writer: TargetWriter
    planner: Planner
    binding: Binding

    @property
    def description(self) -> str:
        return f"{self.source_name} → {self.target_name}"
