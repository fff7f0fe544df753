"""Who is who between WeCom and Authing, for the upstream direction (pure): the rules
that pair records before the canonical planner compares them, which it cannot decide
because they read platform marks.

- ``DepartmentIndex``: WeCom department id ↔ Authing departmentId, for ours;
- ownership: users are ours by externalId plus our extension field or a department of
  our organization (``is_managed_user``), departments by openDepartmentId within the
  organization, or ``wechatwork_department_id`` where that is synthetic or absent
  (``managed_department_id``);
- ``match_renames``: renames whose callback was lost (the old account, by email, mobile
  or a unique name and department set);
- ``UnmanagedLookup``: Authing users without externalId that look like a WeCom user (by
  the identifiers Authing keeps unique), taken over only with adopt_existing;
- ``relink_by_path``: departments created from an address book's paths (synthetic keys)
  matched to WeCom's ids by their path of names, re-keyed rather than recreated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sync_core.authing.mapping import (
    DEPARTMENT_ID_FIELD,
    USER_ID_FIELD,
    DesiredUser,
    department_id_of,
    is_synthetic,
    map_user,
)
from sync_core.authing.model import AuthingDepartment, AuthingMembership, AuthingUser
from sync_core.binding import Binding
from sync_core.wecom.model import WeComDepartment, WeComUser

_D = TypeVar("_D", AuthingDepartment, WeComDepartment)


@dataclass(frozen=True, slots=True)
class DepartmentIndex:
    """WeCom department id ↔ Authing departmentId for departments that exist in Authing,
    plus ``source``: WeCom departments the planner may create on demand for a user."""

    authing_ids: Mapping[int, str] = field(default_factory=dict, hash=False)
    source: Mapping[int, WeComDepartment] = field(default_factory=dict, hash=False)
    _wecom_ids: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wecom_ids", {a: w for w, a in self.authing_ids.items()})

    @classmethod
    def build(cls, departments: Iterable[AuthingDepartment], policy: Binding,
              source: Iterable[WeComDepartment] = ()) -> DepartmentIndex:
        ids: dict[int, str] = {}
        for dept in departments:
            wecom_id = managed_department_id(dept, policy)
            if wecom_id is not None:
                ids.setdefault(wecom_id, dept.department_id)
        ids.setdefault(policy.root_wecom_id, policy.root_department_id)
        return cls(authing_ids=ids, source={d.id: d for d in source})

    def authing_id(self, wecom_id: int) -> str | None:
        return self.authing_ids.get(wecom_id)

    def wecom_id(self, authing_id: str | None) -> int | None:
        return None if authing_id is None else self._wecom_ids.get(authing_id)


def relink_by_path(depts: Mapping[int, WeComDepartment], authing: list[AuthingDepartment],
                    ours: Mapping[int, AuthingDepartment], policy: Binding
                    ) -> dict[int, AuthingDepartment]:
    """WeCom departments (real ids) with no Authing department yet, matched to one of ours
    that still carries only a synthetic key (created from an address book's paths) by
    the same path of names below the root. Such a department is re-keyed, not recreated:
    its ``wechatwork_department_id`` gets WeCom's id, and its members stay."""
    unlinked = {d.department_id: d for w, d in ours.items() if is_synthetic(w)}
    wanted = [d for d in depts.values() if d.id not in ours and not is_synthetic(d.id)
              and d.id != policy.root_wecom_id]
    if not unlinked or not wanted:
        return {}
    by_id = {d.department_id: d for d in authing}
    by_path: dict[tuple[str, ...], AuthingDepartment | None] = {}
    for dept in unlinked.values():
        names = authing_path(dept, by_id, policy)
        if names is not None:  # two with one path: neither can be told apart
            by_path[names] = None if names in by_path else dept
    found: dict[int, AuthingDepartment] = {}
    for desired in wanted:
        path = _wecom_path(desired, depts, policy)
        match = by_path.get(path) if path is not None else None
        if match is not None:
            found[desired.id] = match
    return found


def authing_path(dept: AuthingDepartment, by_id: Mapping[str, AuthingDepartment],
                 policy: Binding) -> tuple[str, ...] | None:
    """Names from below the organization root down to ``dept``; ``None`` if one is
    unknown (or the parents loop)."""
    return _names_down(dept, lambda d: d.department_id == policy.root_department_id,
                       lambda d: by_id.get(d.parent_department_id or ""))


def _wecom_path(dept: WeComDepartment, depts: Mapping[int, WeComDepartment],
                policy: Binding) -> tuple[str, ...] | None:
    return _names_down(dept, lambda d: d.id == policy.root_wecom_id,
                       lambda d: depts.get(d.parent_id) if d.parent_id is not None else None)


def _names_down(dept: _D, is_root: Callable[[_D], bool],
                parent: Callable[[_D], _D | None]) -> tuple[str, ...] | None:
    names: list[str] = []
    current: _D | None = dept
    while current is not None and not is_root(current):
        name = current.name
        if not name or len(names) > 32:  # unnamed, or the parents loop
            return None
        names.append(name.strip())
        current = parent(current)
    return tuple(reversed(names))


def count_managed(actual_users: Iterable[AuthingUser],
                  actual_departments: Iterable[AuthingDepartment], policy: Binding) -> int:
    """How many Authing objects are ours: the base of the guard's percentage."""
    depts = list(actual_departments)
    index = DepartmentIndex.build(depts, policy)
    users = sum(1 for u in actual_users if u.external_id and is_managed_user(u, policy, index))
    return users + sum(1 for d in depts if managed_department_id(d, policy) not in
                       (None, policy.root_wecom_id))


def is_managed_user(user: AuthingUser, policy: Binding, index: DepartmentIndex) -> bool:
    """Ours: has an externalId and shows it was written by us (our extension field, or a
    department of our organization). With neither read, the externalId alone decides."""
    if not user.external_id:
        return False
    if user.custom_data is None and user.memberships is None:
        return True
    if user.custom().get(USER_ID_FIELD) == user.external_id:
        return True
    return any(membership_wecom_id(m, policy, index) is not None
               for m in user.memberships or ())


def match_renames(users: Iterable[WeComUser], actual: Iterable[AuthingUser], policy: Binding,
                  index: DepartmentIndex) -> dict[str, AuthingUser]:
    """Renames whose callback was lost: {new userid: the account of its old userid}.

    Candidates are managed accounts whose userid is no longer in WeCom and WeCom userids
    that have no account. A pair is the same member when they share an email or mobile
    (WeCom keeps both unique in the corp, reference §3.6), or, where WeCom withholds both
    (apps created after 2022-06-20), when name and (known, non-empty) department set agree
    and no other candidate on either side has the same pair."""
    users = list(users)
    present = {u.userid for u in users}
    accounts = [a for a in actual if a.external_id]
    held = {a.external_id for a in accounts}
    orphans = [a for a in accounts if a.external_id not in present
               and is_managed_user(a, policy, index)]
    newcomers = [u for u in users if u.userid not in held and u.renamed_from not in held]
    if not orphans or not newcomers:
        return {}
    pairs: dict[str, AuthingUser] = {}
    taken: set[str] = set()
    by_unique = {(how, v.lower()): a for a in orphans
                 for how, v in (("email", a.email), ("phone", a.phone)) if v}
    for user in newcomers:
        want = map_user(user, policy.mapping)
        for how in ("email", "phone"):
            value = want.get(how)
            hit = by_unique.get((how, str(value).lower())) if value else None
            if hit is not None and hit.user_id not in taken:
                pairs[user.userid] = hit
                taken.add(hit.user_id)
                break

    def account_sign(a: AuthingUser) -> tuple[str, frozenset[int]] | None:
        depts = {membership_wecom_id(m, policy, index) for m in a.memberships or ()}
        known = frozenset(d for d in depts if d is not None)
        return (a.name, known) if a.name and known else None

    def user_sign(u: WeComUser) -> tuple[str, frozenset[int]] | None:
        return (u.name, frozenset(u.department)) if u.name and u.department else None

    left = defaultdict(list)
    for a in orphans:
        if a.user_id not in taken and (sign := account_sign(a)) is not None:
            left[sign].append(a)
    came = defaultdict(list)
    for u in newcomers:
        if u.userid not in pairs and (sign := user_sign(u)) is not None:
            came[sign].append(u)
    for sign, group in came.items():
        if len(group) == 1 and len(left.get(sign, ())) == 1:
            pairs[group[0].userid] = left[sign][0]
    return pairs


class UnmanagedLookup:
    """Authing users without externalId, by the identifiers Authing keeps unique."""

    def __init__(self, users: list[AuthingUser]) -> None:
        self._by: dict[tuple[str, str], AuthingUser] = {}
        for user in users:
            for how, value in (("email", user.email), ("username", user.username),
                               ("phone", user.phone)):
                if value:
                    self._by.setdefault((how, value.lower()), user)

    def find(self, want: DesiredUser, taken: set[str]) -> tuple[AuthingUser, str] | None:
        for how in ("email", "phone", "username"):
            value = want.get(how)
            user = self._by.get((how, value.lower())) if value else None
            if user is not None and user.user_id not in taken:
                return user, how
        return None


def membership_wecom_id(m: AuthingMembership, policy: Binding,
                         index: DepartmentIndex) -> int | None:
    if m.organization_code and m.organization_code != policy.organization_code:
        return None
    wecom_id = index.wecom_id(m.department_id)
    if wecom_id is None and m.organization_code:
        wecom_id = department_id_of(m.open_department_id)
    return wecom_id


def managed_department_id(dept: AuthingDepartment, policy: Binding) -> int | None:
    """The WeCom id (real or synthetic) of an Authing department of our organization,
    else None. ``wechatwork_department_id`` stands in where openDepartmentId is synthetic
    (re-keyed to WeCom's id once it became known) or absent (a department the downstream
    direction created in WeCom: Authing cannot set openDepartmentId afterwards)."""
    if dept.organization_code not in (None, policy.organization_code):
        return None
    wecom_id = department_id_of(dept.open_department_id)
    if wecom_id is None or is_synthetic(wecom_id):
        linked = str(dept.custom().get(DEPARTMENT_ID_FIELD) or "")
        if linked.isdigit():
            return int(linked)
    return wecom_id
