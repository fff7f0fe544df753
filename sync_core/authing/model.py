"""The Authing side as read (pure, no I/O): users, memberships and departments from the v3
DTOs. ``None`` means "Authing has no value" for attributes, and "not fetched" for the
collections (``custom_data``, ``memberships``), which the planner then treats with care.

Constructors raise ``ValueError`` naming the offending key when a payload has the wrong shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync_core.http import fields as f

# The organization of a membership whose department is not among the synced
# organization's (a reconcile lists only those): another organization of the pool, never
# None, which means "unknown" and is counted as the synced one.
OTHER_ORGANIZATION = "(another organization)"


@dataclass(frozen=True, slots=True)
class AuthingMembership:
    """One department of an Authing user. Flags are ``None`` when the read did not say."""

    department_id: str
    open_department_id: str | None = None
    organization_code: str | None = None
    is_leader: bool | None = None
    is_main: bool | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AuthingMembership:
        """From one ``get-user-departments`` list item."""
        department_id = f.text(item, "departmentId")
        if not department_id:
            raise ValueError("Authing membership has no departmentId")
        return cls(
            department_id=department_id,
            open_department_id=f.text(item, "openDepartmentId") or None,
            organization_code=f.text(item, "organizationCode") or None,
            is_leader=f.boolean(item, "isLeader"),
            is_main=f.boolean(item, "isMainDepartment"),
        )


@dataclass(frozen=True, slots=True)
class AuthingUser:
    """An Authing user as read. ``custom_data``/``memberships`` ``None`` = not fetched."""

    user_id: str
    external_id: str | None = None
    username: str | None = None
    name: str | None = None
    phone: str | None = None
    phone_country_code: str | None = None
    email: str | None = None
    gender: str | None = None
    status: str | None = None
    photo: str | None = None
    custom_data: tuple[tuple[str, Any], ...] | None = None
    memberships: tuple[AuthingMembership, ...] | None = None

    @classmethod
    def from_dto(cls, dto: Mapping[str, Any],
                 departments: Iterable[Mapping[str, Any]] | None = None) -> AuthingUser:
        """From a ``UserDto`` (read withCustomData, withDepartmentIds).

        ``departments`` are ``get-user-departments`` items; they carry the leader and main
        flags, which ``departmentIds`` lacks. Without either, memberships stay unknown.
        """
        user_id = f.text(dto, "userId")
        if not user_id:
            raise ValueError("Authing user has no userId")
        memberships: tuple[AuthingMembership, ...] | None = None
        if departments is not None:
            memberships = tuple(AuthingMembership.from_item(item) for item in departments)
        elif dto.get("departmentIds") is not None:
            main = f.text(dto, "mainDepartmentId")
            memberships = tuple(
                AuthingMembership(department_id=dept, is_main=(dept == main) if main else None)
                for dept in f.str_tuple(dto, "departmentIds") or ()
            )
        return cls(
            user_id=user_id,
            external_id=f.text(dto, "externalId") or None,
            username=f.text(dto, "username") or None,
            name=f.text(dto, "name") or None,
            phone=f.text(dto, "phone") or None,
            phone_country_code=f.text(dto, "phoneCountryCode") or None,
            email=f.text(dto, "email") or None,
            gender=f.text(dto, "gender") or None,
            status=f.text(dto, "status") or None,
            photo=f.text(dto, "photo") or None,
            custom_data=_custom_data(dto.get("customData")),
            memberships=memberships,
        )

    def custom(self) -> dict[str, Any]:
        return dict(self.custom_data or ())


@dataclass(frozen=True, slots=True)
class AuthingDepartment:
    """An Authing department; ``members_count`` counts direct members only."""

    department_id: str
    open_department_id: str | None = None
    name: str | None = None
    parent_department_id: str | None = None
    organization_code: str | None = None
    custom_data: tuple[tuple[str, Any], ...] | None = None
    members_count: int | None = None
    has_children: bool | None = None

    @classmethod
    def from_dto(cls, dto: Mapping[str, Any]) -> AuthingDepartment:
        """From a ``DepartmentDto``."""
        department_id = f.text(dto, "departmentId")
        if not department_id:
            raise ValueError("Authing department has no departmentId")
        return cls(
            department_id=department_id,
            open_department_id=f.text(dto, "openDepartmentId") or None,
            name=f.text(dto, "name") or None,
            parent_department_id=f.text(dto, "parentDepartmentId") or None,
            organization_code=f.text(dto, "organizationCode") or None,
            custom_data=_custom_data(dto.get("customData")),
            members_count=f.integer(dto, "membersCount"),
            has_children=f.boolean(dto, "hasChildren"),
        )

    def custom(self) -> dict[str, Any]:
        return dict(self.custom_data or ())


def _custom_data(value: Any) -> tuple[tuple[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"customData must be an object, got {value!r}")
    return tuple(sorted((str(k), v) for k, v in value.items()))
