"""The whole WeCom directory for the reconciler (the desired state of upstream).

A read that loses a page is still returned, marked incomplete with the reason: the
reconciler may create and update from it but must not delete, since an absence could be
the lost page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sync_core.engine.ports import SourceSnapshot
from sync_core.errors import RestrictedError, StopSync, SyncError, TransientError
from sync_core.wecom.client import WeComClient
from sync_core.wecom.model import WeComDepartment, WeComUser

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)
    transient: bool = False

    def add(self, what: str, exc: Exception) -> None:
        self.items.append(f"{what}: {type(exc).__name__}: {exc}")
        self.transient = self.transient or isinstance(exc, TransientError)


async def read_wecom(client: WeComClient, *, concurrency: int = 8) -> SourceSnapshot:
    """Departments from ``department/list`` (or ``simplelist`` + ``department/get`` where
    restricted); users from ``user/list`` per department (or ``user/list_id``, IDs and
    departments only, where restricted: attributes then stay unknown and are not compared).
    """
    problems = _Problems()
    notes: list[str] = []
    departments = await _wecom_departments(client, concurrency, problems, notes)
    users = await _wecom_users(client, [d.id for d in departments], concurrency, problems,
                               notes)
    return SourceSnapshot(tuple(users), tuple(departments), tuple(problems.items), tuple(notes),
                          problems.transient)


async def _wecom_departments(client: WeComClient, concurrency: int, problems: _Problems,
                             notes: list[str]) -> list[WeComDepartment]:
    try:
        return [WeComDepartment.from_api(row) for row in await client.department_list()]
    except RestrictedError:
        notes.append("department/list refused: names read one by one with department/get")
    rows = await client.department_simplelist()

    async def named(row: dict[str, Any]) -> WeComDepartment:
        try:
            return WeComDepartment.from_api(await client.department_get(int(row["id"])))
        except StopSync:
            raise
        except SyncError as exc:
            problems.add(f"department/get {row['id']}", exc)
            return WeComDepartment.from_api(row)  # structure without the name

    return await bounded([named(row) for row in rows], concurrency)


async def _wecom_users(client: WeComClient, department_ids: list[int], concurrency: int,
                       problems: _Problems, notes: list[str]) -> list[WeComUser]:
    if department_ids:
        try:
            first = await client.user_list(department_ids[0])
        except RestrictedError:
            notes.append("user/list refused: users read with user/list_id (IDs and "
                         "departments only)")
        except StopSync:
            raise
        except SyncError as exc:
            problems.add(f"user/list {department_ids[0]}", exc)
            return await _users_by_department(client, department_ids, [], concurrency,
                                              problems)
        else:
            return await _users_by_department(client, department_ids, first, concurrency,
                                              problems)
    memberships: dict[str, list[int]] = {}
    try:
        async for row in client.user_list_id():
            memberships.setdefault(str(row["userid"]), []).append(int(row["department"]))
    except StopSync:
        raise
    except SyncError as exc:
        problems.add("user/list_id", exc)
    return [WeComUser(userid=uid, department=tuple(depts)) for uid, depts in
            memberships.items()]


async def _users_by_department(client: WeComClient, department_ids: list[int],
                               first: list[dict[str, Any]], concurrency: int,
                               problems: _Problems) -> list[WeComUser]:
    def models(page: list[dict[str, Any]]) -> list[WeComUser]:
        # Each page becomes models as it arrives: 10^5 raw rows are never held at once.
        return [WeComUser.from_api(row) for row in page]

    async def members(dept_id: int) -> list[WeComUser]:
        try:
            return models(await client.user_list(dept_id))
        except StopSync:
            raise
        except SyncError as exc:
            problems.add(f"user/list {dept_id}", exc)
            return []

    pages = [models(first), *await bounded([members(d) for d in department_ids[1:]],
                                           concurrency)]
    users: dict[str, WeComUser] = {}
    for page in pages:
        for user in page:
            # A user in several departments appears on each one's page: same record.
            users.setdefault(user.userid, user)
    return list(users.values())


async def bounded(jobs: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await ``jobs`` with at most ``limit`` in flight; results in input order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))

