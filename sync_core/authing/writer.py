"""Authing as the target of a direction, written (the ``TargetWriter`` port of upstream).

A planned ``Request`` here is one Authing v3 call (``endpoint`` after ``/api/v3/``), sent
through the client's dry-run choke point. Users to create may go 50 at a time in one
``create-users-batch`` (reference/authing-api.md, "Batch limits"), with the same bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from sync_core.authing.client import BATCH_LIMIT, AuthingClient
from sync_core.directory.operations import Action, DepartmentRef, Operation, Request, UserRef
from sync_core.directory.vocabulary import Kind
from sync_core.errors import NotFoundError, StopSync, SyncError

log = logging.getLogger(__name__)
BATCH_CREATE = "create-users-batch"


class AuthingWriter:
    remote = "authing"
    batch_limit = BATCH_LIMIT

    def __init__(self, client: AuthingClient, *, concurrency: int = 8) -> None:
        self.client = client
        self.concurrency = concurrency

    def batchable(self, op: Operation) -> bool:
        """A user create whose first request is a create-user with nothing left to resolve
        (memberships come after, by externalId)."""
        return (op.kind is Kind.USER and op.action is Action.CREATE and bool(op.requests)
                and op.requests[0].endpoint == "create-user"
                and not _has_ref(op.requests[0].body))

    async def write(self, request: Request, ids: MutableMapping[str, str],
                    made: MutableMapping[str, str]) -> None:
        body = await self._with_user_ids(request.body, made)
        result = await self.client.send_planned(request.endpoint, body)
        if not isinstance(result, dict):
            return
        if request.endpoint == "create-department":
            open_id = body.get("openDepartmentId")
            if open_id and result.get("departmentId"):
                ids[str(open_id)] = made[str(open_id)] = str(result["departmentId"])
        if request.endpoint == "create-user" and result.get("userId"):
            made[str(body.get("externalId"))] = str(result["userId"])

    async def _with_user_ids(self, body: Mapping[str, Any],
                             made: MutableMapping[str, str]) -> Mapping[str, Any]:
        """``body`` with each UserRef in ``userIds`` replaced by the user's Authing id: the
        one this operation's create returned, else read by externalId."""
        refs = [u for u in body.get("userIds") or () if isinstance(u, UserRef)]
        for ref in refs:
            if ref.external_id not in made:
                found = await self.client.get_user(external_id=ref.external_id)
                if not found or not found.get("userId"):
                    raise NotFoundError(f"no Authing user with externalId "
                                        f"{ref.external_id!r}", remote=self.remote)
                made[ref.external_id] = str(found["userId"])
        if not refs:
            return body
        return {**body, "userIds": tuple(made[u.external_id] if isinstance(u, UserRef) else u
                                         for u in body["userIds"])}

    async def create_batch(self, ops: Sequence[Operation]) -> list[tuple[int, str | None]]:
        """Authing validates a batch in full, so one bad user refuses all: those go one by
        one (the answer says 0 for them), and only the bad one fails. After an ambiguous
        failure (a timeout, a 5xx) the users found by externalId count as created."""
        bodies = [op.requests[0].body for op in ops]
        try:
            created = await self.client.send_planned(BATCH_CREATE, {"list": bodies})
        except StopSync:
            raise
        except SyncError as exc:
            log.warning("%s of %d users failed (%s); creating them one by one",
                        BATCH_CREATE, len(ops), exc)
            if not getattr(exc, "maybe_applied", False):
                return [(0, None)] * len(ops)
            try:
                found = await self.client.get_users_by_external_ids(op.key for op in ops)
            except StopSync:
                raise
            except SyncError:
                found = {}
            return [(1, _user_id(found[op.key])) if op.key in found else (0, None)
                    for op in ops]
        ids = {str(u.get("externalId")): _user_id(u) for u in created or ()
               if isinstance(u, dict)}
        return [(1, ids.get(op.key)) for op in ops]

    async def look_up(self, keys: Sequence[str], ids: MutableMapping[str, str]) -> None:
        for open_id in keys:
            if open_id not in ids:
                dept = await self.client.get_department(open_department_id=open_id)
                if dept and dept.get("departmentId"):
                    ids[open_id] = str(dept["departmentId"])


def _user_id(dto: Mapping[str, Any]) -> str | None:
    return str(dto["userId"]) if dto.get("userId") else None


def _has_ref(value: Any) -> bool:
    if isinstance(value, DepartmentRef):
        return True
    if isinstance(value, Mapping):
        return any(_has_ref(v) for v in value.values())
    if isinstance(value, tuple | list):
        return any(_has_ref(v) for v in value)
    return False
