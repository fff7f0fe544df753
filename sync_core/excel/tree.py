"""The department tree of an address book read alone: paths → departments (pure, no I/O).

Since 2022-08-15 a new server IP cannot read WeCom's contacts API (reference §3.2, §3.3),
so the exported address book may be all there is. Its 部门 cells are ``/`` paths from the
company (``公司/研发部/后端组``, several joined by ``;`` or ``；``, reference §4) and carry no
WeCom ids. ``build_tree`` turns them into departments and memberships.

Identity (the decision; also in the README):

- The top segment is the company, WeCom's root department: by default it is the
  organization root. ``keep_top`` makes it a department under the root instead (Authing's
  Excel node: "ignore the top department" off).
- A department is first looked for among the Authing departments that are ours, by its
  path of names below the root. What matches keeps its identity, whatever it is: WeCom's
  id (from an earlier API sync) or a synthetic key. So the same file imported again
  matches everything and writes nothing.
- A path that matches nothing but whose direct members are mostly those of one of ours
  that the file no longer has (Jaccard similarity of the member sets ≥ ``SIMILAR``, each
  the other's unique best match) is that department renamed or moved: it keeps its
  identity and its members. A department with no direct members is matched the same way
  by its children, once they are matched. Anything else is a delete plus a create.
- A department new to Authing gets a synthetic id derived from its path (``SYNTHETIC_BASE``
  + 48 bits of SHA-256, ``openDepartmentId`` ``excel-<12 hex>``, see ``mapping``): never
  numeric, so never a WeCom id, and stable, as re-imports find it by path in Authing.
- When WeCom's real ids become known (the API, or the department CSV template
  ``部门名称,部门ID,父部门ID,排序``), the planner re-keys each synthetic department with the
  same path to the real id (``identity.relink_by_path``): the id goes into the
  ``wechatwork_department_id`` extension field (Authing cannot change an
  ``openDepartmentId`` after creation), and the department is the real one from then on.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace

from sync_core.authing.identity import authing_path, managed_department_id
from sync_core.authing.mapping import SYNTHETIC_BASE, is_synthetic
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.binding import Binding
from sync_core.wecom.model import WeComDepartment, WeComUser

SIMILAR = 0.5  # member-set similarity from which an absent and a new department are one

Path = tuple[str, ...]  # names below the root


@dataclass(frozen=True, slots=True)
class ExcelTree:
    """``users`` with their departments; ``departments`` the root first, then parents
    before children; ``renamed`` (old path, new path) pairs recognised as one department."""

    users: tuple[WeComUser, ...]
    departments: tuple[WeComDepartment, ...]
    renamed: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


def synthetic_id(path: Path, taken: Container[int] = ()) -> int:
    """A stable id for a department known only by ``path``, outside ``taken``."""
    used = taken
    salt = 0
    while True:
        text = "/".join(path) + (f"#{salt}" if salt else "")
        dept_id = SYNTHETIC_BASE + int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
        if dept_id not in used:
            return dept_id
        salt += 1


def build_tree(users: Sequence[WeComUser], paths: Mapping[str, Sequence[str]],
               departments: Sequence[AuthingDepartment], authing_users: Sequence[AuthingUser],
               policy: Binding, *, keep_top: bool = False) -> ExcelTree:
    """``paths``: userid → the user's department paths as read (``excel.columns.
    normalize_path``: segments joined by ``/``), the first the main department. Users
    without paths keep what they have."""
    notes: list[str] = []
    given: dict[str, list[int]] = {}  # a cell may mix WeCom ids (digits) with paths
    split: dict[str, list[Path]] = {}
    for uid, entries in paths.items():
        given[uid] = [int(e) for e in entries if e.isdigit()]
        split[uid] = [tuple(e.split("/")) for e in entries if not e.isdigit()]
    tops = sorted({segments[0] for entries in split.values() for segments in entries})
    if not tops:
        tops = [""]
    if not keep_top and len(tops) > 1:
        notes.append(f"department paths start from {len(tops)} different top departments "
                     f"({', '.join(tops[:5])}): each is read as the organization root; keep "
                     "the top department to make them departments")

    def below_root(segments: Path) -> Path:
        return segments if keep_top else segments[1:]

    members: dict[Path, set[str]] = defaultdict(set)
    for uid, listed in split.items():
        for segments in listed:
            members[below_root(segments)].add(uid)
    wanted: set[Path] = set()
    for path in members:
        wanted.update(path[:n] for n in range(1, len(path) + 1))
    ordered = sorted(wanted, key=lambda p: (len(p), p))

    match = _Matcher(departments, authing_users, policy)
    ids = match.by_path(ordered)
    renamed = match.moves(ordered, ids, members)
    taken = set(match.ours) | set(ids.values())
    for path in ordered:
        if path not in ids:
            ids[path] = synthetic_id(path, taken)
            taken.add(ids[path])

    root = policy.root_wecom_id
    tree = [WeComDepartment(root, tops[0] if len(tops) == 1 and tops[0] and not keep_top
                            else None, 0)]
    tree += [WeComDepartment(ids[p], p[-1], ids[p[:-1]] if len(p) > 1 else root)
             for p in ordered]
    out = []
    for user in users:
        mine = split.get(user.userid)
        if mine is None:
            out.append(user)
            continue
        chosen = list(dict.fromkeys([*(ids[below_root(s)] if below_root(s) else root
                                      for s in mine), *given[user.userid]]))
        out.append(replace(user, department=tuple(chosen), main_department=chosen[0],
                           is_leader_in_dept=None))
    shown = tuple(("/".join(old), "/".join(new)) for old, new in renamed)
    notes += [f"department {old!r} is now {new!r} (by its members or children): moved or "
              "renamed, not recreated"
              for old, new in shown]
    return ExcelTree(tuple(out), tuple(tree), shown, tuple(notes))


class _Matcher:
    """Our Authing departments, by path and by members."""

    def __init__(self, departments: Sequence[AuthingDepartment],
                 users: Sequence[AuthingUser], policy: Binding) -> None:
        by_id = {d.department_id: d for d in departments}
        self.ours: dict[int, AuthingDepartment] = {}
        for dept in sorted(departments, key=lambda d: d.department_id):
            wecom_id = managed_department_id(dept, policy)
            if wecom_id is not None and wecom_id != policy.root_wecom_id:
                self.ours.setdefault(wecom_id, dept)
        self.paths: dict[int, Path | None] = {
            w: authing_path(d, by_id, policy) for w, d in self.ours.items()}
        self._wecom_of = {d.department_id: w for w, d in self.ours.items()}
        self.members: dict[int, set[str]] = defaultdict(set)
        for user in users:
            for m in user.memberships or ():
                wecom_id = self._wecom_of.get(m.department_id)
                if wecom_id is not None and user.external_id:
                    self.members[wecom_id].add(user.external_id)
        self.children: dict[int, set[int]] = defaultdict(set)
        for wecom_id, dept in self.ours.items():
            parent = self._wecom_of.get(dept.parent_department_id or "")
            if parent is not None:
                self.children[parent].add(wecom_id)

    def by_path(self, wanted: Sequence[Path]) -> dict[Path, int]:
        found: dict[Path, int | None] = {}
        for wecom_id, path in self.paths.items():
            if path is not None:  # two of ours with one path: neither is "the" one
                found[path] = None if path in found else wecom_id
        return {p: found[p] for p in wanted if found.get(p) is not None}  # type: ignore[misc]

    def moves(self, wanted: Sequence[Path], ids: dict[Path, int],
              members: Mapping[Path, set[str]]) -> list[tuple[Path, Path]]:
        """Pair new paths with absent departments (see the module); fills ``ids``."""
        used = set(ids.values())
        absent = {w for w in self.ours if w not in used}
        pairs: list[tuple[Path, Path]] = []
        if not absent:
            return pairs
        new = [p for p in wanted if p not in ids]
        by_member: dict[str, set[int]] = defaultdict(set)
        for wecom_id in absent:
            for uid in self.members[wecom_id]:
                by_member[uid].add(wecom_id)
        scores: dict[Path, dict[int, float]] = {}
        for path in new:
            mine = members.get(path, set())
            candidates = set().union(*(by_member.get(u, set()) for u in mine)) if mine else set()
            scores[path] = {w: len(mine & self.members[w]) / len(mine | self.members[w])
                            for w in candidates}
        self._pair(scores, ids, absent, pairs)
        # Containers (no direct members): by their children, deepest first.
        for path in sorted(new, key=len, reverse=True):
            if path in ids or members.get(path):
                continue
            kids = {ids[p] for p in new if len(p) == len(path) + 1 and p[:-1] == path
                    and p in ids}
            hits = [w for w in absent if not self.members[w] and kids
                    and self.children[w] == kids]
            if len(hits) == 1:
                ids[path] = hits[0]
                absent.discard(hits[0])
                pairs.append((self.paths[hits[0]] or (), path))
        return pairs

    def _pair(self, scores: dict[Path, dict[int, float]], ids: dict[Path, int],
              absent: set[int], pairs: list[tuple[Path, Path]]) -> None:
        best_for: dict[int, list[tuple[float, Path]]] = defaultdict(list)
        for path, row in scores.items():
            for wecom_id, score in row.items():
                best_for[wecom_id].append((score, path))
        for path, row in scores.items():
            if not row:
                continue
            top = max(row.values())
            winners = [w for w, s in row.items() if s == top]
            if top < SIMILAR or len(winners) != 1:
                continue
            wecom_id = winners[0]
            rivals = [p for s, p in best_for[wecom_id] if s >= top and p != path]
            if rivals:
                continue
            ids[path] = wecom_id
            absent.discard(wecom_id)
            pairs.append((self.paths[wecom_id] or (), path))


__all__ = ["SIMILAR", "ExcelTree", "build_tree", "is_synthetic", "synthetic_id"]
