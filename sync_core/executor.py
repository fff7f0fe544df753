"""Carry out planned operations against Authing. Not supposed to raise: each operation
gets an ``Outcome``; only ``StopSync`` (credentials refused, dry run breached) aborts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .authing_client import AuthingClient
from .errors import MissingDepartment, NotFoundError, StopSync, SyncError, UnfitError
from .operations import (
    Action,
    DepartmentRef,
    Kind,
    Operation,
    UnresolvedDepartment,
    UserRef,
    resolve_refs,
)

log = logging.getLogger(__name__)
BATCH_CREATE = "create-users-batch"


class ItemStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"  # dry run: would be applied


@dataclass(frozen=True, slots=True)
class Outcome:
    op: Operation
    status: ItemStatus
    error: SyncError | None = None

    @property
    def error_text(self) -> str | None:
        if self.error is None:
            return None
        return f"{type(self.error).__name__}: {self.error}"


def batchable(op: Operation) -> bool:
    """A user create that ``Executor.create_users`` may batch: its first request is a
    create-user with nothing left to resolve (memberships come after, by externalId)."""
    return (op.kind is Kind.USER and op.action is Action.CREATE and bool(op.requests)
            and op.requests[0].endpoint == "create-user"
            and not _has_ref(op.requests[0].body))


def _unfit(op: Operation, status: ItemStatus) -> Outcome:
    """The outcome of an operation that carries values Authing cannot take (whatever else
    it wrote stays written): one error naming each value and the limit."""
    return Outcome(op, status, UnfitError("; ".join(op.unfit), upstream="authing"))


def _has_ref(value: Any) -> bool:
    if isinstance(value, DepartmentRef):
        return True
    if isinstance(value, Mapping):
        return any(_has_ref(v) for v in value.values())
    if isinstance(value, tuple | list):
        return any(_has_ref(v) for v in value)
    return False


def unapplied(op: Operation) -> Outcome:
    """What an operation amounts to without running it (dry runs, no-op plans)."""
    if op.unfit:  # what would be written is planned; the values that cannot fit fail
        return _unfit(op, ItemStatus.PLANNED if op.writes else ItemStatus.FAILED)
    if op.action is Action.SKIP:
        return Outcome(op, ItemStatus.SKIPPED)
    if not op.writes:
        return Outcome(op, ItemStatus.UNCHANGED)
    return Outcome(op, ItemStatus.PLANNED)


class Executor:
    """``ids`` maps WeCom department id (str) → Authing departmentId. It is filled as
    departments are created or looked up, so later operations can resolve their refs."""

    def __init__(self, authing: AuthingClient) -> None:
        self._authing = authing

    async def apply(self, ops: Sequence[Operation],
                    ids: MutableMapping[str, str] | None = None) -> list[Outcome]:
        known: MutableMapping[str, str] = {} if ids is None else ids
        return [await self.apply_one(op, known) for op in ops]

    async def apply_one(self, op: Operation, ids: MutableMapping[str, str], *,
                        sent: int = 0) -> Outcome:
        """``sent``: how many of the leading requests were already carried out (a user
        created by ``create_users``); the rest are sent here."""
        if not op.writes:
            return unapplied(op)
        users: dict[str, str] = {}  # externalId → userId of a user this operation created
        try:
            if op.needs:
                await self._look_up(op.needs, ids)
                op = resolve_refs(op, ids)
            for request in op.requests[sent:]:
                body = await self._with_user_ids(request.body, users)
                result = await self._authing.send_planned(request.endpoint, body)
                self._remember(request.endpoint, body, result, ids)
                if request.endpoint == "create-user" and isinstance(result, dict) \
                        and result.get("userId"):
                    users[str(body.get("externalId"))] = str(result["userId"])
        except StopSync:
            raise
        except UnresolvedDepartment as exc:
            missing = tuple(d for d in op.needs if d not in ids)
            return Outcome(op, ItemStatus.FAILED,
                           MissingDepartment(str(exc), departments=missing, upstream="authing"))
        except SyncError as exc:
            log.warning("%s %s %s failed: %s", op.kind, op.key, op.action, exc)
            return Outcome(op, ItemStatus.FAILED, exc)
        return _unfit(op, ItemStatus.FAILED) if op.unfit else Outcome(op, ItemStatus.APPLIED)

    async def _with_user_ids(self, body: Mapping[str, Any],
                             users: dict[str, str]) -> Mapping[str, Any]:
        """``body`` with each UserRef in ``userIds`` replaced by the user's Authing id: the
        one this operation's create returned, else read by externalId."""
        refs = [u for u in body.get("userIds") or () if isinstance(u, UserRef)]
        for ref in refs:
            if ref.external_id not in users:
                found = await self._authing.get_user(external_id=ref.external_id)
                if not found or not found.get("userId"):
                    raise NotFoundError(f"no Authing user with externalId "
                                        f"{ref.external_id!r}", upstream="authing")
                users[ref.external_id] = str(found["userId"])
        if not refs:
            return body
        return {**body, "userIds": tuple(users[u.external_id] if isinstance(u, UserRef) else u
                                         for u in body["userIds"])}

    async def create_users(self, ops: Sequence[Operation]) -> list[int]:
        """Create the users of ``ops`` (each ``batchable``, at most BATCH_LIMIT) with one
        create-users-batch call instead of one create-user each; the same bodies, so the
        same users. Answers, per op, how many of its requests were carried out (1 or 0),
        for ``apply_one(op, ids, sent=...)`` to send the rest.

        Authing validates a batch in full, so one bad user refuses all: those go one by
        one, and only the bad one fails. After an ambiguous failure (a timeout, a 5xx) the
        users found by externalId count as created."""
        bodies = [op.requests[0].body for op in ops]
        try:
            await self._authing.send_planned(BATCH_CREATE, {"list": bodies})
        except StopSync:
            raise
        except SyncError as exc:
            log.warning("%s of %d users failed (%s); creating them one by one",
                        BATCH_CREATE, len(ops), exc)
            if not getattr(exc, "maybe_applied", False):
                return [0] * len(ops)
            try:
                found = await self._authing.get_users_by_external_ids(op.key for op in ops)
            except StopSync:
                raise
            except SyncError:
                found = {}
            return [1 if op.key in found else 0 for op in ops]
        return [1] * len(ops)

    async def _look_up(self, needs: Sequence[str], ids: MutableMapping[str, str]) -> None:
        for open_id in needs:
            if open_id not in ids:
                dept = await self._authing.get_department(open_department_id=open_id)
                if dept and dept.get("departmentId"):
                    ids[open_id] = str(dept["departmentId"])

    @staticmethod
    def _remember(endpoint: str, body: Any, result: Any,
                  ids: MutableMapping[str, str]) -> None:
        if endpoint == "create-department" and isinstance(result, dict):
            open_id = body.get("openDepartmentId")
            if open_id and result.get("departmentId"):
                ids[str(open_id)] = str(result["departmentId"])
