"""Authing as the target of a direction, as read (the ``TargetReader`` port of upstream).

A WeCom user is the Authing user whose ``externalId`` is the userid; a department is the one
whose ``openDepartmentId`` is the WeCom id, in the binding's organization (see
reference/authing-api.md, "Users" and "Organizations").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from sync_core.authing.client import AuthingClient
from sync_core.authing.mapping import (
    DEPARTMENT_ID_FIELD,
    department_id_of,
    is_synthetic,
    map_user,
)
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.authing.snapshot import read_authing
from sync_core.binding import Binding
from sync_core.directory.vocabulary import Kind
from sync_core.engine.ports import Hints, TargetSnapshot
from sync_core.errors import PermanentError, SyncError
from sync_core.http.retry import gather_pair
from sync_core.wecom.model import WeComUser

log = logging.getLogger(__name__)
# (kind, WeCom id) → the Authing id the downstream direction linked to it, if any.
Linked = Callable[[Kind, str], Awaitable[str | None]]


class AuthingTarget:
    REKEYED_TTL = 60.0  # seconds a miss may trust the last scan of the organization

    def __init__(self, client: AuthingClient, organization_name: str = "WeCom", *,
                 linked: Linked | None = None) -> None:
        """``linked``: the Authing id the downstream direction recorded for a WeCom id (a
        department it created in WeCom for an Authing one, which Authing cannot mark with
        ``openDepartmentId`` afterwards)."""
        self.client = client
        self.organization_name = organization_name
        self.linked = linked
        # Departments created from an address book's paths and later re-keyed to WeCom's id
        # (``excel.tree``): openDepartmentId stays synthetic, the id is in customData.
        self._rekeyed: dict[str, dict[str, Any]] = {}
        self._rekeyed_at: float | None = None

    async def bootstrap(self, binding: Binding) -> Binding:
        """Make sure the organization and the extension fields exist; answer the binding
        with the organization's real root departmentId."""
        org = await self.client.get_organization()
        if org is None:
            try:
                org = await self.client.create_organization(
                    self.organization_name, open_department_id=str(binding.root_wecom_id))
            except SyncError:
                # Another process may have created it a moment ago (code is unique).
                org = await self.client.get_organization()
                if org is None:
                    raise
            else:
                log.info("created Authing organization %s", binding.organization_code)
        defined = await self.client.ensure_custom_fields()
        if defined:
            log.info("defined Authing custom fields: %s", ", ".join(defined))
        root = org.get("departmentId")
        return replace(binding, root_department_id=str(root)) if root else binding

    async def user(self, keys: Sequence[str], binding: Binding) -> AuthingUser | None:
        """The linked Authing user with its memberships, read side by side (memberships by
        externalId); when the user is absent the second read is wasted, never wrong."""
        for external_id in dict.fromkeys(keys):
            dto, items = await gather_pair(
                self.client.get_user(external_id=external_id),
                self._memberships_or_none(external_id))
            if dto is not None:
                return (AuthingUser.from_dto(dto, items) if items is not None
                        else await self.with_memberships(dto))
        return None

    async def colliding_user(self, desired: WeComUser, binding: Binding) -> AuthingUser | None:
        """An Authing account without externalId that would collide on a unique field:
        handed to the planner, which refuses to take it over unless adopt_existing."""
        want = map_user(desired, binding.mapping)
        for unique in ("email", "phone", "username"):
            value = want.get(unique)
            if not value:
                continue
            for dto in await self.client.find_users(unique, str(value)):
                if not dto.get("externalId"):
                    return await self.with_memberships(dto)
        return None

    async def department(self, key: str, binding: Binding) -> AuthingDepartment | None:
        dto = await self._department_dto(key)
        return AuthingDepartment.from_dto(dto) if dto else None

    async def department_id(self, key: str, binding: Binding) -> str | None:
        dto = await self._department_dto(str(key))
        return str(dto["departmentId"]) if dto and dto.get("departmentId") else None

    async def _department_dto(self, open_id: str) -> dict[str, Any] | None:
        """Our Authing department for WeCom id ``open_id``: by openDepartmentId, else the one
        the downstream direction linked to it (``linked``), else one re-keyed from a
        synthetic key (its ``wechatwork_department_id``), which only a scan
        of the organization finds. A scan serves misses for ``REKEYED_TTL`` seconds; the
        reconciler calls ``forget`` after a run (it may have re-keyed)."""
        dto = await self.client.get_department(open_department_id=open_id)
        if dto is None and self.linked is not None:
            authing_id = await self.linked(Kind.DEPARTMENT, open_id)
            if authing_id is not None:
                dto = await self.client.get_department(department_id=authing_id)
        if dto or not open_id.isdigit():
            return dto
        now = time.monotonic()
        if self._rekeyed_at is None or now - self._rekeyed_at > self.REKEYED_TTL:
            scanned: dict[str, dict[str, Any]] = {}
            for row in await self.client.get_all_departments():
                wecom_id = department_id_of(row.get("openDepartmentId"))
                linked = str((row.get("customData") or {}).get(DEPARTMENT_ID_FIELD) or "")
                if wecom_id is not None and is_synthetic(wecom_id) and linked.isdigit():
                    scanned.setdefault(linked, row)
            self._rekeyed, self._rekeyed_at = scanned, now
        return self._rekeyed.get(open_id)

    async def contents(self, department: AuthingDepartment, binding: Binding
                       ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """WeCom userids (externalId) of the department's direct members, and WeCom ids
        of its child departments (``DepartmentContents``)."""
        users = tuple([str(u["externalId"]) async for u in self.client.list_department_members(
            department_id=department.department_id) if u.get("externalId")])
        children = tuple(str(row["openDepartmentId"]) for row in
                         await self.client.list_children_departments(
                             department_id=department.department_id)
                         if str(row.get("openDepartmentId") or "").isdigit())
        return users, children

    def forget(self) -> None:
        """Drop the scan of re-keyed departments: a run may have re-keyed some."""
        self._rekeyed_at = None

    async def write_back_echo(self, kind: Kind, key: str, hints: Hints) -> bool:
        """Upstream writes nothing back to WeCom: no event is such an echo."""
        return False

    async def snapshot(self, binding: Binding) -> TargetSnapshot:
        return await read_authing(self.client, binding)

    async def _memberships_or_none(self, external_id: str) -> list[dict[str, Any]] | None:
        """None when Authing will not answer by externalId for any permanent reason (no
        such user, above all): the caller then takes the one-after-the-other path."""
        try:
            return await self.client.get_user_departments(external_id, id_type="external_id")
        except PermanentError:
            return None

    async def with_memberships(self, dto: dict[str, Any]) -> AuthingUser:
        items = await self.client.get_user_departments(str(dto["userId"]))
        return AuthingUser.from_dto(dto, items)
