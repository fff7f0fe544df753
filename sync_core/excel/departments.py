"""Department cells → WeCom department ids (pure, no I/O).

A department cell holds WeCom ids (the CSV templates: ``3;1``) or name paths from the root
(the address-book export: ``示例科技/研发中心/后端组;示例科技``). Ids are WeCom's own and
are never invented here: a path becomes an id only through a department tree that knows
it (from the API, or the department CSV). Without a tree an id is taken as written and a
path stays unresolved (``None``), for the caller to match by name later.

A path may start at the root department (whose name is the corp name) or below it:
``示例科技/研发中心`` and ``研发中心`` are the same department. Names are compared as whole
normalised paths rather than segment by segment, because WeCom allows ``/`` inside a
department name. A path that could mean two departments is refused, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync_core.excel.columns import normalize_path
from sync_core.wecom.model import WeComDepartment

ROOT_ID = 1


class DepartmentResolver:
    """Resolves one department entry (an id or a path) against an optional tree."""

    def __init__(self, departments: Iterable[WeComDepartment] | None) -> None:
        self.tree = None if departments is None else tuple(departments)
        self._ids = {d.id for d in self.tree or ()}
        self._by_path: dict[str, int] = {}
        self._ambiguous: dict[str, set[int]] = {}
        self._unnamed = 0
        if self.tree is not None:
            self._index(self.tree)

    @property
    def has_tree(self) -> bool:
        return self.tree is not None

    def resolve(self, entry: str) -> int | None:
        """``"3"`` → 3; ``"示例科技/研发中心"`` → its id, or ``None`` without a tree.

        Raises ``ValueError`` for an id or path the tree does not have, or an ambiguous path.
        """
        if entry.isdigit():
            dept_id = int(entry)
            if self.tree is None or dept_id in self._ids:
                return dept_id
            if entry not in self._by_path:  # a department may be named "2024"
                raise ValueError(f"unknown department id {dept_id}")
        if self.tree is None:
            return None
        path = normalize_path(entry)
        found = self._by_path.get(path)
        if found is not None:
            return found
        if path in self._ambiguous:
            ids = ", ".join(str(i) for i in sorted(self._ambiguous[path]))
            raise ValueError(f"department path {entry!r} is ambiguous (WeCom ids {ids})")
        hint = (f" ({self._unnamed} departments of the tree given have no name)"
                if self._unnamed else "")
        raise ValueError(f"unknown department path {entry!r}{hint}")

    def _index(self, tree: tuple[WeComDepartment, ...]) -> None:
        by_id = {d.id: d for d in tree}
        for dept in tree:
            names = _names_from_top(dept, by_id)
            if names is None:
                self._unnamed += dept.name is None
                continue
            full = normalize_path("/".join(names))
            keys = {full}
            top = by_id[_top_of(dept, by_id)]
            if top.id == ROOT_ID or top.parent_id == 0:
                below_root = normalize_path("/".join(names[1:]))
                if below_root:
                    keys.add(below_root)
            for key in keys:
                self._add(key, dept.id)

    def _add(self, key: str, dept_id: int) -> None:
        if key in self._ambiguous:
            self._ambiguous[key].add(dept_id)
            return
        known = self._by_path.get(key)
        if known is None:
            self._by_path[key] = dept_id
        elif known != dept_id:
            del self._by_path[key]
            self._ambiguous[key] = {known, dept_id}


def _top_of(dept: WeComDepartment, by_id: dict[int, WeComDepartment]) -> int:
    current, seen = dept, {dept.id}
    while current.parent_id in by_id and current.parent_id not in seen:
        current = by_id[current.parent_id]
        seen.add(current.id)
    return current.id


def _names_from_top(dept: WeComDepartment,
                    by_id: dict[int, WeComDepartment]) -> list[str] | None:
    """Names from the topmost known ancestor down; ``None`` when one is unnamed or the
    parents loop (a malformed tree: the department then cannot be found by path)."""
    names: list[str] = []
    current: WeComDepartment | None = dept
    seen: set[int] = set()
    while current is not None:
        if current.name is None or current.id in seen:
            return None
        seen.add(current.id)
        names.append(current.name)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return names[::-1]
