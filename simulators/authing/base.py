"""The pool's storage and indexes, shared by the state mixins (users, departments, members).

One ``RLock`` guards everything: the HTTP layer and the admin API take it around each
operation, so an operation is atomic (validated in full before anything is written).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .dto import v2_node, v2_user
from .errors import bad_param, bad_request, department_not_found, org_not_found
from .fields import CustomFields
from .records import Department, MonotonicClock, Organization, User

EventSink = Callable[[str, dict[str, Any]], None]
UNIQUE_USER_KEYS = ("externalId", "email", "phone", "username")


class StateBase:
    def __init__(self, userpool_id: str, clock: MonotonicClock | None = None) -> None:
        self.userpool_id = userpool_id
        self.lock = threading.RLock()
        self.clock = clock or MonotonicClock()
        self.fields = CustomFields(self.clock)
        self.users: dict[str, User] = {}
        # unique key -> normalised value -> user id (emails compared case-insensitively)
        self.index: dict[str, dict[str, str]] = {key: {} for key in UNIQUE_USER_KEYS}
        self.departments: dict[str, Department] = {}
        self.orgs: dict[str, Organization] = {}
        self.version = 0  # moves on every change; keys the list-users cache
        self.sink: EventSink | None = None
        self._muted = 0

    # events -------------------------------------------------------------------------
    def emit(self, event: str, build: Callable[[], dict[str, Any]]) -> None:
        """Hand an event to the webhook pusher; ``build`` runs only when someone listens."""
        if self.sink is not None and not self._muted:
            self.sink(event, build())

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Bulk seeding: changes without webhooks."""
        self._muted += 1
        try:
            yield
        finally:
            self._muted -= 1

    def changed(self) -> None:
        self.version += 1

    # lookups shared by the mixins -----------------------------------------------------
    def org(self, code: str | None) -> Organization:
        if code is None or not code.strip():
            raise bad_request(f"invalid organization code: {code or ''}")
        org = self.orgs.get(code)
        if org is None:
            raise org_not_found(code)
        return org

    def dept(self, department_id: str) -> Department:
        dept = self.departments.get(department_id)
        if dept is None:
            raise department_not_found(department_id)
        return dept

    def parent_of(self, dept: Department) -> Department | None:
        return self.departments.get(dept.parent_id) if dept.parent_id else None

    def descendants(self, dept: Department) -> list[Department]:
        """Breadth-first, without ``dept`` itself."""
        out: list[Department] = []
        queue = deque([dept])
        while queue:
            current = queue.popleft()
            for child_id in current.children:
                child = self.departments[child_id]
                out.append(child)
                queue.append(child)
        return out

    def dept_in_any_org(self, department_id: str, id_type: str) -> Department:
        """For calls without an organizationCode (create-user ``departmentIds``)."""
        if id_type == "department_id":
            return self.dept(department_id)
        if id_type not in ("open_department_id", "code"):
            raise bad_param("departmentIdType")
        hits = [org.open_index.get(department_id) if id_type == "open_department_id"
                else org.code_index.get(department_id) for org in self.orgs.values()]
        found = [hit for hit in hits if hit is not None]
        if not found:
            raise department_not_found(department_id)
        if len(found) > 1:
            raise bad_request(f"department id {department_id} is ambiguous across organizations")
        return self.departments[found[0]]

    # membership primitives (events included) ----------------------------------------------
    def join(self, user: User, dept: Department, now: int) -> bool:
        if dept.department_id in user.departments:
            return False
        user.departments[dept.department_id] = now
        dept.members[user.user_id] = None
        self.changed()
        self.emit("organization:member-added", lambda: self._member_event(user, dept))
        return True

    def leave(self, user: User, dept: Department) -> bool:
        if dept.department_id not in user.departments:
            return False
        del user.departments[dept.department_id]
        dept.members.pop(user.user_id, None)
        if user.user_id in dept.leader_user_ids:
            dept.leader_user_ids.remove(user.user_id)
        if user.main_department_id == dept.department_id:
            user.main_department_id = None
        self.changed()
        self.emit("organization:member-removed", lambda: self._member_event(user, dept))
        return True

    def _member_event(self, user: User, dept: Department) -> dict[str, Any]:
        return {"node": v2_node(dept, self.orgs[dept.org_code]),
                "user": v2_user(user, self.userpool_id)}
