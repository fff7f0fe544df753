"""The canonical directory model (pure): a user, a department, in neutral names.

A direction maps its source records and its target records into these, and one planner
(``directory.planner``) compares them. ``None`` means UNKNOWN everywhere (the side did not
say, or withheld it); it is never "cleared". A known empty value is ``""`` or ``()``.

A target record also says whose it is: ``managed`` True (ours: written by this service),
False (someone else's: never deleted or taken over), None (unknown: a direction that
reads only its own objects). Which marks prove ownership is the direction's rule.

Field names of ``User.fields`` (a direction may leave any out): ``name``, ``username``,
``mobile`` (``"+<code>-<national>"``), ``email``, ``gender`` (``"male"``, ``"female"``,
``"unknown"``), ``position``, ``avatar`` (a URL), ``status`` (``"active"``,
``"suspended"``, ``"resigned"``; a target state outside these keeps its own text, so it
differs from each). A target with no value for a field it stores shows ``""`` (known
empty); a source that clears a field sends ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

USER_FIELDS = ("name", "username", "mobile", "email", "gender", "position", "avatar", "status")


class Membership(NamedTuple):
    """A user's place in one department, with its flags (None: the side did not say).

    ``department``: a source department key (text, or the number a source gives its
    departments); in a target record, the source key of the department it is linked to,
    or, with ``foreign`` True, the target id of a department the direction does not
    manage (kept as it is by a write that replaces the list). A tuple: one is made per
    membership on both sides of every planned user."""

    department: Any
    leader: bool | None = None
    main: bool | None = None
    foreign: bool = False


# Not frozen (treat it as if it were): a plan builds two per user, and a frozen
# dataclass's __init__ costs three times as much (20k-user plan, +2 µs per user).
@dataclass(slots=True, unsafe_hash=True)
class User:
    """``key``: the source key (or, for a target record, the source key it is linked to);
    ``target_id``: the target's id (for the source: the id it must have there).
    ``departments``: for a source record, source department keys; for a target record,
    target department ids. ``enabled``: None when unknown."""

    key: str
    target_id: str | None
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    departments: tuple[str, ...] | None = None
    enabled: bool | None = None
    custom: tuple[tuple[str, Any], ...] | None = None
    initial: tuple[tuple[str, Any], ...] = ()
    # Source records: the key this user had before a rename, when known.
    renamed_from: str | None = None
    # Target records: ours or not (see the module docstring); ``resigned`` None where the
    # target cannot tell a resignation from a suspension.
    managed: bool | None = None
    resigned: bool | None = None
    # The platform record this was mapped from: opaque to the planner, for the Render.
    record: Any = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Department:
    """``parent``: for a source record, the parent's source key; for a target record, the
    parent's target id. None: a root (``root``), else unknown. ``custom``: free-form
    data, (key, value) pairs; a source record's are the keys it owns, None: none."""

    key: str
    target_id: str | None
    name: str | None
    parent: str | None
    root: bool = False  # the source's root, or the target's: never written or deleted
    custom: tuple[tuple[str, Any], ...] | None = None
    # Target records: ours or not; ``parent_key``: the parent's source key, when known
    # (shown in changes); ``members`` and ``children``: what is still in it (None:
    # unknown, the target checks on delete).
    managed: bool | None = None
    parent_key: str | None = None
    members: int | None = None
    children: int | None = None
