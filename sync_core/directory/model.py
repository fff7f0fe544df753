"""The canonical directory model (pure): a user, a department, in neutral names.

A direction maps its source records and its target records into these, and one planner
(``directory.planner``) compares them. ``None`` means UNKNOWN everywhere (the side did not
say, or withheld it); it is never "cleared". A known empty value is ``""`` or ``()``.

Field names of ``User.fields`` (a direction may leave any out): ``name``, ``mobile``,
``email``, ``gender`` (``"male"``, ``"female"``, ``"unknown"``), ``position``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USER_FIELDS = ("name", "mobile", "email", "gender", "position")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Department:
    """``parent``: for a source record, the parent's source key; for a target record, the
    parent's target id. None for a root."""

    key: str
    target_id: str | None
    name: str | None
    parent: str | None
