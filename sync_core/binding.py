"""A binding: one WeCom corp joined to one Authing organization, and the policies that
govern it. Built once from settings, completed once by the target's bootstrap (the real
root department id), then passed down to every plan and read: never patched, so that
several bindings can share a process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sync_core.authing.mapping import MappingPolicy, UsernameSource
from sync_core.settings import UserDeletePolicy

if TYPE_CHECKING:
    from sync_core.settings import Settings


@dataclass(frozen=True, slots=True)
class Binding:
    """``root_department_id``: the Authing departmentId of the organization root, which
    stands for WeCom's root department ``root_wecom_id``; until the bootstrap has read it
    from ``get-organization`` it is ``"root"``, which Authing accepts for a parent (not
    everywhere)."""

    name: str = "default"
    corp_id: str = ""
    organization_code: str = "wecom"
    user_delete_policy: UserDeletePolicy = UserDeletePolicy.RESIGN
    adopt_existing: bool = False
    mapping: MappingPolicy = field(default_factory=MappingPolicy)
    root_department_id: str = "root"
    root_wecom_id: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Binding:
        values: dict[str, Any] = {
            "corp_id": settings.wecom_corp_id or "",
            "organization_code": settings.authing_organization_code,
            "user_delete_policy": settings.user_delete_policy,
            "adopt_existing": settings.adopt_existing,
            "mapping": MappingPolicy(username_source=UsernameSource(settings.username_source)),
        }
        return cls(**{**values, **overrides})
