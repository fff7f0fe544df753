"""Authing as the source of a direction (the downstream ``SourceReader``).

A webhook is a hint (reference/authing-api.md §4.3, §4.3b): its field names are internal
and old, and ``user:updated`` fires whether or not the change succeeded, so every entity is
re-read through the v3 API with its custom data and departments. A user or department the
API no longer finds is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync_core.authing.client import AuthingClient
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.authing.snapshot import read_authing
from sync_core.binding import Binding
from sync_core.directory.vocabulary import Kind
from sync_core.engine.ports import Hints, ReadFrom, SourceSnapshot
from sync_core.errors import PermanentError
from sync_core.http.retry import gather_pair
from sync_core.wecom.downstream import GONE_STATUSES, memberships, wecom_userid


class AuthingSource:
    def __init__(self, client: AuthingClient, binding: Binding, *,
                 userid_source: str = "username") -> None:
        """``userid_source``: the downstream userid rule (``username`` or ``email``)."""
        self.client = client
        self.binding = binding
        self.userid_source = userid_source

    def hints(self, kind: Kind, payloads: Sequence[Mapping[str, Any]]) -> Hints:
        return Hints(events=tuple(payloads))

    async def read_user(self, key: str, original: str,
                        hints: Hints) -> tuple[AuthingUser | None, ReadFrom]:
        dto, items = await gather_pair(self.client.get_user(user_id=key),
                                       self._departments(key))
        if dto is None:
            return None, ReadFrom.API
        return AuthingUser.from_dto(dto, items), ReadFrom.API

    async def _departments(self, key: str) -> list[dict[str, Any]] | None:
        try:
            return await self.client.get_user_departments(key)
        except PermanentError:
            return None  # the user is gone (or was never there): get-user says which

    async def read_department(self, key: str,
                              hints: Hints) -> tuple[AuthingDepartment | None, ReadFrom]:
        return await self.department(key), ReadFrom.API

    async def department(self, key: str) -> AuthingDepartment | None:
        dto = await self.client.get_department(department_id=key)
        return AuthingDepartment.from_dto(dto) if dto else None

    async def snapshot(self) -> SourceSnapshot:
        snap = await read_authing(self.client, self.binding)
        return SourceSnapshot(snap.users, snap.departments)

    async def present(self, kind: Kind, key: str, target: str | None = None) -> bool:
        """Whether Authing wants WeCom's ``target`` (a userid or department id) again: a
        staged delete names the Authing user or department it was planned for, or the
        WeCom id alone where no Authing record mapped to it. A user counts when it (or
        another user now holding the userid: its ``externalId``, or its username under
        that rule) is not resigned (resigned has left: README), maps to ``target`` and
        has a department in the organization; a department when it exists by id or by
        ``openDepartmentId``."""
        if kind is Kind.DEPARTMENT:
            if await self.department(key) is not None:
                return True
            return target is not None and target.isdigit() and await self.client.get_department(
                open_department_id=target) is not None
        candidates = [await self.client.get_user(user_id=key)]
        if target is not None:
            candidates.append(await self.client.get_user(external_id=target))
            if self.userid_source == "username":
                candidates.append(await self.client.get_user(username=target))
        for dto in dict((d["userId"], d) for d in candidates if d).values():
            user, _ = await self.read_user(str(dto["userId"]), str(dto["userId"]), Hints())
            if user is None or user.status in GONE_STATUSES:
                continue
            userid = wecom_userid(user, self.userid_source)
            if (target is None or (userid or "").lower() == target.lower()) and (
                    user.memberships is None or memberships(user, self.binding)):
                return True
        return False
