"""The department tree: creation, moves, renames and deletes under WeCom's rules.

Rules (reference §3.2, §3.6): the root is id 1, cannot be deleted and is updated without
``parentid``; names are 1-32 characters
without ``\\:?"<>|`` and unique among siblings; ids given on create are 32-bit and > 1;
the tree is at most 15 levels deep; a department with children or members cannot be
deleted. Each mutation validates everything before it changes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from . import errors
from .changes import Change
from .errors import ApiError
from .model import MAX_DEPTH, ROOT_ID, Department
from .validation import MAX_DEPT_ID, check_department_name, check_order

_DEFAULT_FIRST_ORDER = 100_000_000  # WeCom numbers new siblings downwards from a large value
_ORDER_STEP = 1000


class DepartmentTree:
    """Departments by id, with child lists; ``has_members`` is the user index's answer."""

    def __init__(self, corp_name: str, has_members: Callable[[int], bool]) -> None:
        self.by_id: dict[int, Department] = {}
        self._children: dict[int, dict[int, None]] = {}
        self._has_members = has_members
        self.reset(corp_name)

    def reset(self, corp_name: str) -> None:
        self.by_id = {ROOT_ID: Department(ROOT_ID, corp_name, 0, _DEFAULT_FIRST_ORDER)}
        self._children = {ROOT_ID: {}}

    def __contains__(self, dept_id: object) -> bool:
        return dept_id in self.by_id

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, dept_id: int, *, errcode: int = errors.INVALID_DEPT_ID) -> Department:
        dept = self.by_id.get(dept_id)
        if dept is None:
            raise ApiError(errcode, f"department {dept_id}")
        return dept

    # -- shape queries ----------------------------------------------------------------

    def children(self, dept_id: int) -> list[Department]:
        """Children in display order: larger ``order`` first, then id."""
        kids = [self.by_id[c] for c in self._children.get(dept_id, ())]
        return sorted(kids, key=lambda d: (-d.order, d.id))

    def walk(self, dept_id: int = ROOT_ID) -> Iterator[Department]:
        """``dept_id`` and all its descendants, parents before children."""
        stack = [self.by_id[dept_id]]
        while stack:
            dept = stack.pop()
            yield dept
            stack.extend(reversed(self.children(dept.id)))

    def depth(self, dept_id: int) -> int:
        """Level of ``dept_id``: the root is 1."""
        level, current = 1, self.by_id[dept_id]
        while current.id != ROOT_ID:
            level, current = level + 1, self.by_id[current.parentid]
        return level

    def height(self, dept_id: int) -> int:
        """Levels in the subtree rooted at ``dept_id`` (a leaf has height 1)."""
        kids = self._children.get(dept_id, {})
        return 1 + max((self.height(c) for c in kids), default=0)

    def path(self, dept_id: int) -> list[str]:
        """Names from the root down: ``["示例科技", "研发中心", "后端组"]``."""
        names, current = [], self.by_id.get(dept_id)
        while current is not None:
            names.append(current.name)
            current = self.by_id.get(current.parentid) if current.id != ROOT_ID else None
        return names[::-1]

    # -- mutations --------------------------------------------------------------------

    def create(self, values: dict[str, Any]) -> tuple[Department, Change]:
        name = values.get("name")
        if name is None:
            raise ApiError(errors.DEPT_NAME_LENGTH, "name missing")
        check_department_name(name)
        parentid = values.get("parentid")
        if parentid is None or parentid not in self.by_id:
            raise ApiError(errors.PARENT_NOT_FOUND, f"parentid {parentid}")
        if self.depth(parentid) >= MAX_DEPTH:
            raise ApiError(errors.INVALID_PARENT_ID, f"department levels exceed {MAX_DEPTH}")
        dept_id = values.get("id")
        if dept_id is None:
            dept_id = max(self.by_id) + 1
        elif dept_id <= ROOT_ID or dept_id > MAX_DEPT_ID:
            raise ApiError(errors.INVALID_DEPT_ID, f"id {dept_id}: must be > 1 and 32-bit")
        elif dept_id in self.by_id:
            raise ApiError(errors.DEPT_EXISTS, f"id {dept_id}")
        self._check_sibling_name(parentid, name, None)
        order = values.get("order")
        if order is None:
            order = self._next_order(parentid)
        check_order(order)
        name_en = values.get("name_en", "")
        _check_name_en(name_en)
        dept = Department(dept_id, name, parentid, order, name_en)
        self.by_id[dept_id] = dept
        self._children[dept_id] = {}
        self._children[parentid][dept_id] = None
        change = Change("create_party", (("Id", dept_id), ("Name", name),
                                         ("ParentId", parentid), ("Order", order)))
        return dept, change

    def update(self, values: dict[str, Any]) -> Change | None:
        """Apply the given fields; the change is None when neither name nor parent moved."""
        dept_id = values.get("id")
        if dept_id is None:
            raise ApiError(errors.INVALID_DEPT_ID, "id missing")
        dept = self.get(dept_id, errcode=errors.DEPT_NOT_FOUND)
        if dept_id == ROOT_ID and values.get("parentid", ROOT_ID) not in self.by_id:
            # Reference §3.6: the root is updated without parentid; with 0, 60124. (Under
            # a department, itself included, it is a cycle: 60010.)
            raise ApiError(errors.INVALID_PARENT_ID, "the root department has no parent")
        parentid = values.get("parentid", dept.parentid)
        name = values.get("name", dept.name)
        if parentid != dept.parentid:
            self._check_move(dept, parentid)
        if "name" in values:
            check_department_name(name)
        if name != dept.name or parentid != dept.parentid:
            self._check_sibling_name(parentid, name, dept.id)
        if "order" in values:
            check_order(values["order"])
        if "name_en" in values:
            _check_name_en(values["name_en"])

        fields: list[tuple[str, Any]] = [("Id", dept.id)]
        if name != dept.name:
            fields.append(("Name", name))
        if parentid != dept.parentid:
            fields.append(("ParentId", parentid))
            del self._children[dept.parentid][dept.id]
            self._children[parentid][dept.id] = None
        dept.name, dept.parentid = name, parentid
        dept.order = values.get("order", dept.order)
        dept.name_en = values.get("name_en", dept.name_en)
        return Change("update_party", tuple(fields)) if len(fields) > 1 else None

    def delete(self, dept_id: int) -> Change:
        if dept_id == ROOT_ID:
            raise ApiError(errors.DELETE_ROOT)
        dept = self.get(dept_id, errcode=errors.DEPT_NOT_FOUND)
        if self._children[dept_id]:
            raise ApiError(errors.DEPT_HAS_CHILDREN, f"department {dept_id}")
        if self._has_members(dept_id):
            raise ApiError(errors.DEPT_HAS_MEMBERS, f"department {dept_id}")
        del self.by_id[dept_id], self._children[dept_id]
        del self._children[dept.parentid][dept_id]
        return Change("delete_party", (("Id", dept_id),))

    # -- helpers ----------------------------------------------------------------------

    def _check_move(self, dept: Department, parentid: int) -> None:
        if parentid not in self.by_id:
            raise ApiError(errors.PARENT_NOT_FOUND, f"parentid {parentid}")
        ancestor: int | None = parentid
        while ancestor is not None:
            if ancestor == dept.id:
                raise ApiError(errors.DEPT_CYCLE, f"{parentid} is {dept.id} or below it")
            ancestor = self.by_id[ancestor].parentid if ancestor != ROOT_ID else None
        if self.depth(parentid) + self.height(dept.id) > MAX_DEPTH:
            raise ApiError(errors.INVALID_PARENT_ID, f"department levels exceed {MAX_DEPTH}")

    def _check_sibling_name(self, parentid: int, name: str, own_id: int | None) -> None:
        for sibling in self._children.get(parentid, ()):  # the root (parent 0) has none
            if sibling != own_id and self.by_id[sibling].name == name:
                raise ApiError(errors.DEPT_EXISTS, f"name {name!r} under {parentid}")

    def _next_order(self, parentid: int) -> int:
        orders = [self.by_id[c].order for c in self._children[parentid]]
        return max(min(orders) - _ORDER_STEP, 0) if orders else _DEFAULT_FIRST_ORDER


def _check_name_en(name_en: str) -> None:
    if len(name_en) > 64:
        raise ApiError(errors.DEPT_NAME_LENGTH, "name_en longer than 64 characters")
