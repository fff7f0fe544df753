"""WeCom as the source of a direction (the ``SourceReader`` port of upstream).

An event is a hint. The entity is re-read from WeCom where the API allows it; when WeCom
refuses the read (48009 restricted, 60020 untrusted IP, 48002 no permission: see
reference/wecom-platform.md, "2022 restrictions") the events' own fields are used for a
cool-down period, and that is said in logs and metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from sync_core.directory.vocabulary import Kind
from sync_core.engine.ports import Hints, ReadFrom, SourceSnapshot
from sync_core.errors import NotFoundError, PermanentError, RestrictedError
from sync_core.wecom.client import WeComClient
from sync_core.wecom.events import PARTY_CHANGES, USER_CHANGES, change_from_payload
from sync_core.wecom.model import WeComDepartment, WeComUser
from sync_core.wecom.snapshot import read_wecom

log = logging.getLogger(__name__)


class ReadCooldown:
    """After WeCom refuses a read, don't ask again until the cool-down has passed."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until = 0.0

    @property
    def active(self) -> bool:
        return self._clock() < self._until

    def trip(self, exc: RestrictedError) -> None:
        if not self.active:
            log.warning("WeCom refused a read (%s); applying events from their own fields "
                        "for %.0f s", exc, self.seconds)
        self._until = self._clock() + self.seconds


class WeComSource:
    """Reads users and departments from the WeCom contacts API (``user/get``,
    ``department/get``), falling back to the events' fields while reads are refused."""

    def __init__(self, client: WeComClient, *, cooldown: ReadCooldown,
                 concurrency: int = 8, readable: bool = True,
                 on_event_fields: Callable[[str], None] | None = None) -> None:
        self.client = client
        # False without a corp id and contact secret (a run from an exported address book
        # alone): WeCom is then never called.
        self.readable = readable
        self.cooldown = cooldown
        self.concurrency = concurrency
        self._on_event_fields = on_event_fields or (lambda kind: None)

    def hints(self, kind: Kind, payloads: Sequence[Mapping[str, Any]]) -> Hints:
        types = USER_CHANGES if kind is Kind.USER else PARTY_CHANGES
        events = tuple(change_from_payload(dict(p)) for p in payloads
                       if p.get("change_type") in types)
        renamed_to: str | None = next(
            (new for e in reversed(events) if (new := getattr(e, "new_user_id", None))), None)
        announced = any(e.change_type == "create_user" for e in events)
        return Hints(events, renamed_to, announced)

    async def read_user(self, key: str, original: str,
                        hints: Hints) -> tuple[WeComUser | None, ReadFrom]:
        if not self.cooldown.active:
            try:
                user = WeComUser.from_api(await self.client.user_get(key))
            except NotFoundError:  # 60111: confirmed gone (or out of the app's scope)
                return None, ReadFrom.API
            except RestrictedError as exc:
                self.cooldown.trip(exc)
            else:
                if key != original:
                    user = replace(user, renamed_from=original)
                return user, ReadFrom.API
        self._on_event_fields("user")
        if not hints.events:
            raise RestrictedError("WeCom refuses reads and no event carries the user's "
                                  "fields; will retry after the cool-down")
        return _fold_users(hints.events), ReadFrom.EVENT

    async def read_department(self, key: str,
                              hints: Hints) -> tuple[WeComDepartment | None, ReadFrom]:
        if not self.cooldown.active:
            try:
                return (WeComDepartment.from_api(await self.client.department_get(int(key))),
                        ReadFrom.API)
            except NotFoundError:
                return None, ReadFrom.API
            except RestrictedError as exc:
                self.cooldown.trip(exc)
        self._on_event_fields("department")
        if not hints.events:
            raise RestrictedError("WeCom refuses reads and no event carries the department's "
                                  "fields; will retry after the cool-down")
        state: WeComDepartment | None = None
        for hint in hints.events:
            if hint.change_type == "delete_party":
                state = None
            else:
                state = _merge(state, WeComDepartment.from_event(hint))
        return state, ReadFrom.EVENT

    async def department(self, key: str) -> WeComDepartment | None:
        try:
            return WeComDepartment.from_api(await self.client.department_get(int(key)))
        except (NotFoundError, RestrictedError):
            return None

    async def snapshot(self) -> SourceSnapshot:
        """Raises ``PermanentError`` when WeCom cannot be read at all (no credentials)."""
        if not self.readable:
            raise PermanentError("WeCom is not readable: no corp id and contact secret")
        return await read_wecom(self.client, concurrency=self.concurrency)

    async def present(self, kind: Kind, key: str, target: str | None = None) -> bool:
        """Approval re-checks absence: a user or department back in WeCom is not deleted.
        Where ``user/get`` is refused, the ID lists (``user/list_id``,
        ``department/simplelist``) still answer. A department known only by a synthetic
        key (built from an address book's paths), or a WeCom without credentials, cannot
        be asked: ``PermanentError``."""
        if not self.readable:
            raise PermanentError("WeCom is not readable: no corp id and contact secret")
        if kind is Kind.DEPARTMENT and not key.isdigit():
            raise PermanentError(f"department {key} is not WeCom's: WeCom cannot say")
        try:
            if kind is Kind.USER:
                await self.client.user_get(key)
            else:
                await self.client.department_get(int(key))
        except NotFoundError:
            return False
        except RestrictedError:
            if kind is Kind.USER:
                return any([row async for row in self.client.user_list_id()
                            if str(row["userid"]) == key])
            rows = await self.client.department_simplelist()
            return any(str(r.get("id")) == key for r in rows)
        return True


def _merge(old: Any, new: Any) -> Any:
    """Fields the newer record knows win; fields it does not know keep their old value."""
    if old is None:
        return new
    return replace(old, **{f.name: getattr(new, f.name) for f in fields(new)
                           if getattr(new, f.name) is not None})


def _fold_users(hints: Sequence[Any]) -> WeComUser | None:
    state: WeComUser | None = None
    for hint in hints:
        if hint.change_type == "delete_user":
            state = None
        else:
            state = _merge(state, WeComUser.from_event(hint))
    return state
