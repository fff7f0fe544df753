"""The shared words of the sync (pure): directions, entity kinds, and why an operation is a
skip. Every module uses these enums; nothing parses a message to learn what happened."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    """Which way a binding syncs. Inside a direction the two sides are source and target."""

    UPSTREAM = "upstream"  # from the corp directory into the identity platform
    DOWNSTREAM = "downstream"  # back from the identity platform into the corp directory


class Kind(StrEnum):
    """What an event, an operation, a run item or a link is about. Only users and
    departments are synced; the other kinds are events that are recorded and settled."""

    USER = "user"
    DEPARTMENT = "department"
    TAG = "tag"
    JOB = "job"
    SUITE = "suite"
    OTHER = "other"


# The kinds a direction syncs: the only ones of operations, run items and links.
SYNCED_KINDS = (Kind.USER, Kind.DEPARTMENT)


class Cause(StrEnum):
    """Why the planner (or a run) made an operation a skip. The worker decides on these:
    a conflict is dead until an operator acts, a blocked skip is retried, the rest are
    settled as done."""

    CONFLICT = "conflict"  # the target object belongs to someone else
    BLOCKED = "blocked"  # may clear by itself: a department that still has members
    NOT_MANAGED = "not_managed"  # not ours: left alone
    POLICY = "policy"  # a setting says not to (user_delete_policy, resigned users)
    INCOMPLETE = "incomplete"  # the source did not say enough to write (no name, no parent)
    PROTECTED = "protected"  # the organization root is never deleted
    WITHHELD = "withheld"  # a delete held back because the source read was incomplete
