"""What the simulated user pool stores: users, departments, organizations, custom fields.

Records are plain mutable dataclasses owned by ``PoolState``; nothing outside the state
modules should mutate them (use ``sim.admin`` or hold ``state.lock``).
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def new_id() -> str:
    """24 hex characters, the shape of Authing's (MongoDB ObjectId-like) ids."""
    return secrets.token_hex(12)


@functools.lru_cache(maxsize=4096)
def iso(ms: int) -> str:
    """Epoch milliseconds -> ``2022-07-03T02:20:30.123Z`` as Authing renders timestamps.

    A user's three timestamps are often the same instant, and list-users renders 10^5 of
    them: hence the cache and ``time.gmtime`` rather than a datetime."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(ms // 1000)) + f"{ms % 1000:03d}Z"


class MonotonicClock:
    """Epoch milliseconds that strictly increase, so every real change moves ``updatedAt``.

    ``source`` (seconds, like ``time.time``) is injectable so tests can move time.
    """

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.source = source
        self._last = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            self._last = max(int(self.source() * 1000), self._last + 1)
            return self._last


@dataclass(slots=True)
class User:
    user_id: str
    created_at: int
    updated_at: int
    status: str
    status_changed_at: int
    source_type: str
    profile: dict[str, Any] = field(default_factory=dict)  # v3 field names -> value
    custom_data: dict[str, Any] = field(default_factory=dict)
    departments: dict[str, int] = field(default_factory=dict)  # department id -> joined_at
    main_department_id: str | None = None


@dataclass(slots=True)
class Department:
    department_id: str
    org_code: str
    name: str
    parent_id: str | None  # None only for an organization's root node
    created_at: int
    updated_at: int
    open_department_id: str | None = None
    code: str | None = None
    description: str | None = None
    leader_user_ids: list[str] = field(default_factory=list)
    custom_data: dict[str, Any] = field(default_factory=dict)
    status: bool = True
    is_virtual_node: bool = False
    i18n: dict[str, Any] | None = None
    post_id_list: list[str] = field(default_factory=list)
    children: dict[str, None] = field(default_factory=dict)  # ordered set of child ids
    members: dict[str, None] = field(default_factory=dict)  # ordered set of user ids


@dataclass(slots=True)
class Organization:
    org_id: str  # internal id, shown as ``orgId`` / ``organization.id`` in webhook payloads
    code: str
    name: str
    root_id: str
    created_at: int
    updated_at: int
    description: str | None = None
    open_index: dict[str, str] = field(default_factory=dict)  # openDepartmentId -> id
    code_index: dict[str, str] = field(default_factory=dict)  # department code -> id


@dataclass(slots=True)
class CustomField:
    target_type: str
    key: str
    data_type: str
    label: str
    created_at: int
    description: str | None = None
    is_unique: bool = False
    encrypted: bool = False
    user_editable: bool = False
    visible_in_admin_console: bool = True
    visible_in_user_center: bool = True
    options: list[dict[str, Any]] = field(default_factory=list)
    i18n: dict[str, Any] | None = None
