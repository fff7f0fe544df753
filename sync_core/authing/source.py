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


class AuthingSource:
    def __init__(self, client: AuthingClient, binding: Binding) -> None:
        self.client = client
        self.binding = binding

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

    async def present(self, kind: Kind, key: str) -> bool:
        if kind is Kind.USER:
            return await self.client.get_user(user_id=key) is not None
        return await self.department(key) is not None
