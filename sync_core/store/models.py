"""SQLModel tables. Every change here needs an Alembic migration in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventSource(StrEnum):
    WECOM = "wecom"
    AUTHING = "authing"
    OPS = "ops"


class EventStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # will retry at next_attempt_at
    DEAD = "dead"  # gave up; replayable


class InboxEvent(SQLModel, table=True):
    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", name="uq_inbox_source_dedupe"),
        Index("ix_inbox_status_next", "status", "next_attempt_at"),
        Index("ix_inbox_entity", "entity_kind", "entity_key"),
        # The claim's walk over open events, oldest first (migration 0004).
        Index("ix_inbox_open", "id", postgresql_where=text("status IN ('pending', 'failed')"),
              sqlite_where=text("status IN ('pending', 'failed')")),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    dedupe_key: str = Field(max_length=128)
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    entity_kind: str = Field(max_length=16)
    entity_key: str = Field(max_length=255)
    event_type: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default=EventStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Worker bookkeeping (migration 0002). A claim sets both; an expired lease means the
    # claiming worker died and the row is claimable again.
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    processed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Retry budget (migration 0005): transient failures (outages, throttling) spend time
    # since ``transient_since``; ``attempts - transient_failures`` is what the attempt
    # budget counts.
    transient_since: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    transient_failures: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # When the current lease was taken: the start of the attempt in flight (migration 0008_console).
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class AttemptOutcome(StrEnum):
    DONE = "done"
    RETRY = "retry"  # failed; the event waits for its next attempt
    DEAD = "dead"
    REPLAYED = "replayed"  # not a worker attempt: an operator re-queued the event
    INTERRUPTED = "interrupted"  # its worker stopped mid-attempt: the lease ran out


class EventAttempt(SQLModel, table=True):
    """One worker attempt on one inbox event, or one replay: the event's history. Rows are
    only ever added, so a replay never hides what happened before it."""

    __tablename__ = "event_attempts"
    __table_args__ = (Index("ix_event_attempts_event", "event_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int
    number: int  # the event's attempt counter when it ended (restarts at 1 after a replay)
    started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    finished_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    outcome: str = Field(max_length=16)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    actor: str | None = Field(default=None, max_length=64)


class Link(SQLModel, table=True):
    """What we last wrote for one entity in one direction: the echo-suppression record.

    ``source_key``: the entity's key on the direction's source side; ``target_id``: its id
    on the target side, when known. ``essence_hash``: digest of the essence the target
    showed after our last write (``directory.essence``); None when unknown or deleted.
    """

    __tablename__ = "links"
    __table_args__ = (Index("ix_links_target", "target_id", "direction", "kind"),)

    direction: str = Field(primary_key=True, max_length=16)
    kind: str = Field(primary_key=True, max_length=16)
    source_key: str = Field(primary_key=True, max_length=255)
    target_id: str | None = Field(default=None, max_length=255)
    essence_hash: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    BLOCKED = "blocked"


class Run(SQLModel, table=True):
    """One reconcile (or dry run). ``lease_until`` is renewed while it runs: a run left
    ``running`` under an expired lease belonged to a process that died."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_direction_status", "direction", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    direction: str = Field(max_length=16)
    mode: str = Field(max_length=16)
    source: str = Field(max_length=16)
    dry_run: bool = Field(default=False)
    trigger: str = Field(default="ops", max_length=32)
    status: str = Field(default=RunStatus.QUEUED, max_length=16)
    counters: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    notes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    progress_done: int = Field(default=0)
    progress_total: int = Field(default=0)
    # An operator's decision (migration 0008_console): approved, rejected or cancelled;
    # by whom and when.
    decision: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class RunItem(SQLModel, table=True):
    """One object of a run: what was planned for it and what happened. ``request`` keeps a
    staged (blocked) operation so that approval can apply exactly what was shown."""

    __tablename__ = "run_items"
    __table_args__ = (Index("ix_run_items_run", "run_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    seq: int
    kind: str = Field(max_length=16)
    key: str = Field(max_length=255)
    action: str = Field(max_length=16)
    status: str = Field(max_length=16)
    changes: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    operation: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Lease(SQLModel, table=True):
    """A named lease with expiry: the scheduler's leader election across processes."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=128)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
