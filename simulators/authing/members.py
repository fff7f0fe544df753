"""User <-> department membership: replace (set-user-departments), add, remove, list.

``isLeader`` is kept in one place, the department's ``leaderUserIds``, so a leader set by
set-user-departments and one set by update-department are the same fact.
"""

from __future__ import annotations

from typing import Any

from .departments import DepartmentsMixin
from .errors import bad_param, bad_request
from .params import Params
from .records import Department, User, iso
from .users import UsersMixin

MEMBER_SORTS = ("Default", "JoinDepartmentAt", "userId", "createAt", "updatedAt")
ORDERS = ("Asc", "Desc")


class MembersMixin(UsersMixin, DepartmentsMixin):
    def set_user_departments(self, user: User, items: list[Any]) -> None:
        """Replace the user's memberships with exactly ``items`` (Authing department ids)."""
        wanted: dict[str, tuple[Department, bool, bool]] = {}
        for item in items:
            if not isinstance(item, dict):
                raise bad_param("departments")
            p = Params(item)
            p.only({"departmentId", "isLeader", "isMainDepartment"})
            dept = self.dept(p.req("departmentId"))
            wanted[dept.department_id] = (dept, p.flag("isLeader"), p.flag("isMainDepartment"))
        mains = [dept_id for dept_id, (_, _, main) in wanted.items() if main]
        if len(mains) > 1:
            raise bad_request("only one department can be the main department")
        for dept_id in list(user.departments):
            if dept_id not in wanted:
                self.leave(user, self.departments[dept_id])
        now = self.clock.now_ms()
        for dept, leader, _ in wanted.values():
            self.join(user, dept, now)
            self._set_leader(dept, user, leader)
        if user.main_department_id != (mains[0] if mains else None):
            user.main_department_id = mains[0] if mains else None
            self.changed()

    def _set_leader(self, dept: Department, user: User, leader: bool) -> None:
        leaders = list(dept.leader_user_ids)
        if leader and user.user_id not in leaders:
            leaders.append(user.user_id)
        elif not leader and user.user_id in leaders:
            leaders.remove(user.user_id)
        else:
            return
        self._update_node(self.orgs[dept.org_code], dept, {"leaderUserIds": leaders})

    def add_members(self, dept: Department, users: list[User]) -> None:
        now = self.clock.now_ms()
        for user in users:
            self.join(user, dept, now)

    def remove_members(self, dept: Department, users: list[User]) -> None:
        for user in users:
            self.leave(user, dept)

    def members(self, dept: Department, *, include_children: bool = False,
                sort_by: str | None = None, order_by: str | None = None) -> list[User]:
        """Members in join order (children's after the department's own), deduplicated."""
        depts = [dept, *self.descendants(dept)] if include_children else [dept]
        seen: dict[str, int] = {}
        for current in depts:
            for user_id in current.members:
                seen.setdefault(user_id, self.users[user_id].departments[current.department_id])
        users = [self.users[user_id] for user_id in seen]
        sort_by = sort_by or "Default"
        if sort_by not in MEMBER_SORTS:
            raise bad_param("sortBy")
        if (order_by or "Asc") not in ORDERS:
            raise bad_param("orderBy")
        keys: dict[str, Any] = {"JoinDepartmentAt": lambda u: seen[u.user_id],
                                "userId": lambda u: u.user_id,
                                "createAt": lambda u: u.created_at,
                                "updatedAt": lambda u: u.updated_at}
        if sort_by in keys:
            users.sort(key=keys[sort_by])
        if order_by == "Desc":
            users.reverse()
        return users

    def user_department_items(self, user: User, *, with_custom: bool,
                              with_paths: bool) -> list[dict[str, Any]]:
        """The rows of get-user-departments."""
        rows = []
        for dept_id, joined_at in user.departments.items():
            dept = self.departments[dept_id]
            row: dict[str, Any] = {
                "organizationCode": dept.org_code, "departmentId": dept.department_id,
                "isRoot": dept.parent_id is None, "createdAt": iso(dept.created_at),
                "name": dept.name, "description": dept.description,
                "openDepartmentId": dept.open_department_id,
                "isLeader": user.user_id in dept.leader_user_ids, "code": dept.code,
                "isMainDepartment": user.main_department_id == dept.department_id,
                "joinedAt": iso(joined_at), "isVirtualNode": dept.is_virtual_node,
                "i18n": dept.i18n,
            }
            if with_custom:
                row["customData"] = dict(dept.custom_data)
            if with_paths:
                path = self.path(dept)
                row["departmentIdPath"] = [d.department_id for d in path]
                row["departmentCodePath"] = [d.code for d in path]
                row["departmentNamePath"] = [d.name for d in path]
            rows.append(row)
        return rows

    def path(self, dept: Department) -> list[Department]:
        """Root first, ``dept`` last."""
        chain = [dept]
        while chain[-1].parent_id is not None:
            chain.append(self.departments[chain[-1].parent_id])
        return chain[::-1]
