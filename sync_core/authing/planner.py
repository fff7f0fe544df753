"""The upstream direction's planning (WeCom → Authing), an adapter: WeCom records and
Authing records mapped onto the canonical planner (``directory.planner``,
``directory.memberships``), with ``authing.render`` writing the Authing v3 requests.

Pure: no I/O, no clock, no database. The worker (one entity), the reconciler (everything)
and the dry run all plan here, so they agree by construction, and planning a state that
already holds yields only ``unchanged`` operations with no requests.

Decided by the canonical planner: user creates (refused when resigned or without a
username, phone or email) and profile updates, customData merged into Authing's,
department creates, renames, moves; memberships with their leader/main flags; ownership
conflicts (adopt or not) and relinking a taken-over account; removals (delete policy; only
objects that are ours, never the root, never a department that is not empty). Left here:
the mapping of both sides (``map_user``, ``canonical_user``; the default username follows
a userid rename), which records are paired (``authing.identity``: lost renames,
unmanaged look-alikes, departments re-keyed from an address book), creating a user's
missing departments first, what a full plan deletes, and its order.

Where an Authing ``departmentId`` is not known at plan time the body holds a
``DepartmentRef`` and ``needs`` lists the WeCom department id; the executor substitutes
the real id with ``resolve_refs``. A body with an unresolved ref does not serialise to
JSON, so it cannot be sent by mistake.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from sync_core.authing.identity import (
    DepartmentIndex,
    UnmanagedLookup,
    authing_path,
    count_managed,
    is_managed_user,
    managed_department_id,
    match_renames,
    membership_wecom_id,
    relink_by_path,
)
from sync_core.authing.mapping import (
    AUTHING_GENDERS,
    AUTHING_STATUSES,
    PARENT_DEPARTMENT_FIELD,
    USER_DEPARTMENTS_FIELD,
    DesiredUser,
    UsernameSource,
    department_id_of,
    department_open_id,
    map_department,
    map_user,
)
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.authing.render import AuthingRender
from sync_core.binding import Binding
from sync_core.directory import planner as directory
from sync_core.directory.memberships import Held, MembershipPlan, plan_memberships
from sync_core.directory.model import Department, Membership, User
from sync_core.directory.operations import (
    DESTRUCTIVE,
    Action,
    Change,
    DepartmentRef,
    GuardVerdict,
    Mode,
    Operation,
    Request,
    UnresolvedDepartment,
    deletion_guard,
    resolve_refs,
)
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.settings import UserDeletePolicy
from sync_core.wecom.model import WeComDepartment, WeComUser

# -- public planning functions -------------------------------------------------------------


def plan_user(desired: WeComUser | None, actual: AuthingUser | None, policy: Binding,
              index: DepartmentIndex, *, key: str | None = None) -> tuple[Operation, ...]:
    """One user. ``desired`` None = deleted in WeCom; ``actual`` None = not in Authing.

    Missing departments the user needs are created first when ``index.source`` knows them.
    ``key`` names the item when both sides are None (a delete of a user we never had).
    """
    return _plan_user(desired, actual, policy, index, key, None)


def _plan_user(desired: WeComUser | None, actual: AuthingUser | None, policy: Binding,
               index: DepartmentIndex, key: str | None,
               memberships: dict[str, frozenset[str]] | None,
               want: DesiredUser | None = None) -> tuple[Operation, ...]:
    """``plan_user``; ``memberships`` (when given) gets, per Authing user id whose
    memberships the plan replaces, the Authing departmentIds it will hold; ``want``:
    ``desired`` mapped already."""
    if desired is None:
        if actual is None:
            return () if key is None else (Operation(Kind.USER, key, Action.UNCHANGED),)
        return (_plan_user_gone(actual, policy, index),)
    op = _plan_user_upsert(want or map_user(desired, policy.mapping), actual, policy, index,
                           memberships)
    return (op,) if op.action is Action.SKIP else _after_departments(op, policy, index)


def plan_user_hold(actual: AuthingUser, policy: Binding, index: DepartmentIndex,
                   reason: str) -> Operation:
    """Suspend an account whose userid left WeCom while what became of its member is not
    known yet (a rename whose callback has not come): never left active silently. A later
    move sets the status WeCom reports."""
    hold = replace(policy, user_delete_policy=UserDeletePolicy.SUSPEND)
    return replace(_plan_user_gone(actual, hold, index), reason=reason)


def plan_duplicate_removal(duplicate: AuthingUser, original: AuthingUser, policy: Binding,
                           index: DepartmentIndex) -> Operation:
    """The account created for a renamed member before the rename was known: the original
    account (with its history) takes the userid, so the duplicate we created is deleted;
    one we did not create is a conflict for an operator."""
    key = duplicate.external_id or duplicate.user_id
    if not is_managed_user(duplicate, policy, index):
        return _skip(Kind.USER, key, f"conflict: Authing user {duplicate.user_id} holds "
                                     f"externalId {key!r} that the renamed account "
                                     f"{original.user_id} must take", duplicate.user_id,
                     cause=Cause.CONFLICT)
    changes, requests = AuthingRender(policy.organization_code).remove_user(
        User(key, duplicate.user_id), Action.DELETE)
    return Operation(Kind.USER, key, Action.DELETE, duplicate.user_id, changes, requests,
                     reason=f"duplicate of the renamed account {original.user_id}")


def plan_department(desired: WeComDepartment | None, actual: AuthingDepartment | None,
                    policy: Binding, index: DepartmentIndex, *,
                    key: str | None = None) -> tuple[Operation, ...]:
    """One department: create under its parent, rename, move, or delete when empty.

    A parent missing in Authing that ``index.source`` knows is created first (with its own
    missing ancestors), as for a user's departments."""
    if desired is None:
        if actual is None:
            return () if key is None else (Operation(Kind.DEPARTMENT, key, Action.UNCHANGED),)
        children = 1 if actual.has_children else 0
        return (_plan_department_gone(actual, policy, actual.members_count or 0, children),)
    if desired.id == policy.root_wecom_id:  # the organization root is set up, not synced
        return (Operation(Kind.DEPARTMENT, department_open_id(desired.id), Action.UNCHANGED,
                          target=index.authing_id(desired.id)),)
    if actual is None:  # a parent Authing lacks but WeCom has is created first
        return _after_departments(_plan_department_create(desired, policy, index), policy,
                                  index)
    if managed_department_id(actual, policy) != desired.id:
        reason = (f"conflict: Authing department {actual.department_id} is not linked to "
                  f"WeCom department {desired.id} in organization {policy.organization_code}")
        return (_skip(Kind.DEPARTMENT, department_open_id(desired.id), reason,
                      actual.department_id, cause=Cause.CONFLICT),)
    return _after_departments(_plan_department_update(desired, actual, policy, index), policy,
                              index)


def plan_full(desired_users: Iterable[WeComUser], desired_departments: Iterable[WeComDepartment],
              actual_users: Iterable[AuthingUser], actual_departments: Iterable[AuthingDepartment],
              policy: Binding, mode: Mode = Mode.CREATE_UPDATE) -> tuple[Operation, ...]:
    """Everything, for the reconciler. Order: departments created or moved parent-first,
    users created or updated, users removed, departments deleted children-first."""
    users, depts = list(desired_users), {d.id: d for d in desired_departments}
    authing_users, authing_depts = list(actual_users), list(actual_departments)
    ours: dict[int, AuthingDepartment] = {}
    for existing in authing_depts:
        wecom_id = managed_department_id(existing, policy)
        if wecom_id is not None:
            ours.setdefault(wecom_id, existing)
    relinked = relink_by_path(depts, authing_depts, ours, policy)
    ours.update(relinked)
    index = DepartmentIndex.build(authing_depts, policy)
    if relinked:
        index = DepartmentIndex({**index.authing_ids, **{w: d.department_id for w, d in
                                                           relinked.items()}})

    dept_ops: list[Operation] = []
    if mode is not Mode.DELETE_ONLY:
        for dept in sorted(depts.values(), key=lambda d: (_source_depth(d, depts), d.id)):
            if dept.id == policy.root_wecom_id:
                continue
            parent = dept.parent_id
            if (parent is not None and parent not in depts and index.authing_id(parent) is None):
                reason = f"parent department {parent} is neither in WeCom nor in Authing"
                dept_ops.append(_skip(Kind.DEPARTMENT, department_open_id(dept.id), reason,
                                      cause=Cause.INCOMPLETE))
                continue
            if dept.id in relinked:  # ours, known until now by its synthetic key
                dept_ops.append(_plan_department_update(dept, relinked[dept.id], policy, index))
                continue
            dept_ops += plan_department(dept, ours.get(dept.id), policy, index)

    memberships: dict[str, frozenset[str]] = {}
    upserts, wanted = _plan_user_upserts(users, authing_users, policy, index, mode,
                                         memberships)
    removals: list[Operation] = []
    dept_deletes: list[Operation] = []
    if mode is not Mode.CREATE_UPDATE:
        gone = sorted((u for u in authing_users if u.external_id and u.external_id not in wanted
                       and is_managed_user(u, policy, index)), key=lambda u: u.external_id or "")
        removals = [_plan_user_gone(u, policy, index) for u in gone]
        gone_depts = [d for w, d in ours.items() if w not in depts and w != policy.root_wecom_id]
        dept_deletes = _plan_department_deletes(gone_depts, authing_depts, authing_users,
                                                [*dept_ops, *removals], memberships, policy)
    return (*dept_ops, *upserts, *removals, *dept_deletes)


# -- users ---------------------------------------------------------------------------------


def _plan_user_upserts(users: list[WeComUser], actual: list[AuthingUser], policy: Binding,
                       index: DepartmentIndex, mode: Mode,
                       memberships: dict[str, frozenset[str]]
                       ) -> tuple[list[Operation], set[str]]:
    by_external = {u.external_id: u for u in actual if u.external_id}
    unmanaged = UnmanagedLookup([u for u in actual if not u.external_id])
    moved = match_renames(users, actual, policy, index)
    users = [replace(u, renamed_from=moved[u.userid].external_id) if u.userid in moved else u
             for u in users]
    wanted = {u.userid for u in users} | {u.renamed_from for u in users if u.renamed_from}
    ops: list[Operation] = []
    if mode is Mode.DELETE_ONLY:
        return ops, wanted
    adopted: set[str] = set()
    for user in sorted(users, key=lambda u: u.userid):
        match = by_external.get(user.userid) or by_external.get(user.renamed_from or "")
        want = None
        if match is None:
            want = map_user(user, policy.mapping)
            hit = unmanaged.find(want, adopted)
            if hit is not None and not policy.adopt_existing:
                reason = (f"conflict: unmanaged Authing user {hit[0].user_id} has the same "
                          f"{hit[1]} and no externalId; set adopt_existing to take it over")
                ops.append(_skip(Kind.USER, user.userid, reason, hit[0].user_id,
                                 cause=Cause.CONFLICT))
                continue
            if hit is not None:
                match = hit[0]
                adopted.add(match.user_id)
        ops += _plan_user(user, match, policy, index, None, memberships, want)
    return ops, wanted


def _plan_user_upsert(want: DesiredUser, actual: AuthingUser | None, policy: Binding,
                      index: DepartmentIndex,
                      memberships: dict[str, frozenset[str]] | None) -> Operation:
    """The canonical planner decides the create or the profile update (ownership, fields,
    customData) and ``AuthingRender`` writes it; then the set-user-departments rule."""
    render = AuthingRender(policy.organization_code, actual,
                           policy.mapping.default_country_code)
    have = None if actual is None else canonical_user(actual, policy, index)
    desired = canonical_desired(want, actual, policy)
    [op] = directory.plan_user(desired, have, {}, _policy(policy), render,
                               key=want.external_id)
    if op.action is Action.SKIP:
        return op
    created = op.action is Action.CREATE
    planned = _membership_plan(want.memberships, actual, policy, index)
    if op.action is Action.UPDATE and planned is None and not want.unfit \
            and all(c.field in _MIRRORS for c in op.changes):
        return Operation(Kind.USER, op.key, Action.UNCHANGED, op.target)
    if op.action is Action.UNCHANGED and planned is None and not want.unfit:
        return op
    changes = list(render.shown(op.changes, desired, created)) if op.changes else []
    requests = list(op.requests)
    needs: tuple[str, ...] = ()
    unfit = want.unfit
    if planned is not None and (planned.ours or not created):
        user = want.external_id if actual is None else actual.user_id
        needs = tuple(department_open_id(d) for d in planned.needs)
        changes.append(planned.change)
        writes, too_many = render.set_departments(
            user, created, planned, lambda wecom_id: _dept_ref(wecom_id, index))
        requests += writes
        unfit += too_many
        if memberships is not None and actual is not None:  # not created yet: cannot leave
            ids = (index.authing_id(m.department) for m in planned.ours)
            memberships[actual.user_id] = frozenset(
                [i for i in ids if i] + [m.department for m in planned.foreign])
    action = op.action if created or not requests else Action.UPDATE
    return Operation(Kind.USER, want.external_id, action, op.target, tuple(changes),
                     tuple(requests), needs, unfit=unfit)


def canonical_desired(want: DesiredUser, actual: AuthingUser | None, policy: Binding) -> User:
    """A WeCom user's mapped state (``map_user``) as the canonical source record. The
    default username follows a userid rename while the account still has the old one."""
    fields = want.values
    if (actual is not None and want.renamed_from and "username" not in fields
            and actual.username == want.renamed_from
            and policy.mapping.username_source is UsernameSource.USERID):
        fields = {**fields, "username": want.external_id}
    return User(want.external_id, None, fields, custom=want.custom_data,
                initial=want.initial, renamed_from=want.renamed_from)


def _plan_user_gone(actual: AuthingUser, policy: Binding, index: DepartmentIndex) -> Operation:
    [op] = directory.plan_user_removal(
        canonical_user(actual, policy, index), _policy(policy),
        AuthingRender(policy.organization_code), key=actual.external_id or actual.user_id)
    return op


def _membership_plan(want: tuple[Membership, ...] | None, actual: AuthingUser | None,
                     policy: Binding, index: DepartmentIndex) -> MembershipPlan | None:
    """``directory.memberships``' plan over WeCom department ids, with Authing's
    memberships outside our organization kept, or None when WeCom did not say or nothing
    changes. When Authing's memberships were not read, the list is written as WeCom has
    it (and other organizations' memberships cannot be kept): read users
    withDepartmentIds."""
    if want is None:
        return None
    read = actual.memberships if actual is not None else None
    held: list[Held] | None = None
    if read is not None:
        held = []
        for m in read:  # inline: once per membership of every planned user
            wecom_id = membership_wecom_id(m, policy, index)
            held.append((m.department_id, m.is_leader, m.is_main, True) if wecom_id is None
                        else (wecom_id, m.is_leader, m.is_main, False))
    return plan_memberships(want, held, index.authing_id, department_open_id)


def _after_departments(op: Operation, policy: Binding,
                       index: DepartmentIndex) -> tuple[Operation, ...]:
    """Prefix the creates of missing departments ``op`` needs that ``index.source`` knows,
    parent-first; anything unknown stays in ``op.needs`` for the executor."""
    creates: list[Operation] = []
    planned: set[int] = set()
    for open_id in op.needs:
        chain: list[WeComDepartment] = []
        wecom_id: int | None = department_id_of(open_id)
        while (wecom_id is not None and wecom_id in index.source and wecom_id not in planned
               and index.authing_id(wecom_id) is None):
            dept = index.source[wecom_id]
            planned.add(dept.id)
            chain.append(dept)
            wecom_id = dept.parent_id
        creates += [_plan_department_create(d, policy, index) for d in reversed(chain)]
    return (*creates, op)


# -- departments ---------------------------------------------------------------------------


def _plan_department_create(desired: WeComDepartment, policy: Binding,
                            index: DepartmentIndex) -> Operation:
    want = _canonical_department(desired)
    [op] = directory.plan_department(want, None, _OpenIds(index), _policy(policy),
                                     AuthingRender(policy.organization_code), key=want.key)
    return op


def _plan_department_update(desired: WeComDepartment, actual: AuthingDepartment,
                            policy: Binding, index: DepartmentIndex) -> Operation:
    want = _canonical_department(desired)
    old_parent = index.wecom_id(actual.parent_department_id)
    have = Department(want.key, actual.department_id, actual.name, actual.parent_department_id,
                      custom=actual.custom_data,
                      parent_key=None if old_parent is None else department_open_id(old_parent))
    [op] = directory.plan_department(want, have, _OpenIds(index), _policy(policy),
                                     AuthingRender(policy.organization_code), key=want.key)
    if op.action is Action.UPDATE and all(c.field in _MIRRORS for c in op.changes):
        return Operation(Kind.DEPARTMENT, op.key, Action.UNCHANGED, op.target)
    return op


def _canonical_department(desired: WeComDepartment) -> Department:
    want = map_department(desired)
    parent = None if want.parent_id is None else department_open_id(want.parent_id)
    return Department(want.open_department_id, None, want.name, parent,
                      custom=want.custom_data)


class _OpenIds(Mapping[str, str]):
    """The index's Authing departmentIds by openDepartmentId (the canonical keys): a view,
    as one is made per planned department."""

    __slots__ = ("_ids",)

    def __init__(self, index: DepartmentIndex) -> None:
        self._ids = index.authing_ids

    def __getitem__(self, key: str) -> str:
        wecom_id = department_id_of(key)
        if wecom_id is None or wecom_id not in self._ids:
            raise KeyError(key)
        return self._ids[wecom_id]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and department_id_of(key) in self._ids

    def __iter__(self) -> Iterator[str]:
        return (department_open_id(w) for w in self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _plan_department_gone(actual: AuthingDepartment, policy: Binding, members: int,
                          children: int) -> Operation:
    wecom_id = managed_department_id(actual, policy)
    canonical = Department(actual.open_department_id or "", actual.department_id, actual.name,
                           actual.parent_department_id, managed=wecom_id is not None,
                           root=wecom_id == policy.root_wecom_id, members=members,
                           children=children)
    [op] = directory.plan_department_removal(
        canonical, AuthingRender(policy.organization_code),
        key=actual.open_department_id or actual.department_id)
    return op


def _plan_department_deletes(gone: list[AuthingDepartment], all_depts: list[AuthingDepartment],
                             users: list[AuthingUser], planned: list[Operation],
                             memberships: Mapping[str, frozenset[str]],
                             policy: Binding) -> list[Operation]:
    """Deepest first, each only when nothing is left in it once the plan has run:
    ``planned`` holds the department and removal operations, ``memberships`` the
    departments each user whose list the plan replaces will hold."""
    removed_users = {op.target for op in planned if op.kind is Kind.USER
                     and op.action in (Action.RESIGN, Action.DELETE)}
    members: Counter[str] = Counter()
    leaving: Counter[str] = Counter()
    for user in users:
        current = {m.department_id for m in user.memberships or ()}
        members.update(current)
        if user.user_id in removed_users:
            leaving.update(current)
        elif (final := memberships.get(user.user_id)) is not None:
            leaving.update(current - final)
    children: dict[str, list[str]] = defaultdict(list)
    parents = {d.department_id: d.parent_department_id for d in all_depts}
    for dept in all_depts:
        if dept.parent_department_id:
            children[dept.parent_department_id].append(dept.department_id)
    moved = {op.target for op in planned if op.kind is Kind.DEPARTMENT and op.action is Action.MOVE}
    removed: set[str] = set()
    ops = []
    for dept in sorted(gone, key=lambda d: (-_authing_depth(d.department_id, parents),
                                            d.department_id)):
        did = dept.department_id
        base = dept.members_count if dept.members_count is not None else members[did]
        kids = [c for c in children[did] if c not in removed and c not in moved]
        op = _plan_department_gone(dept, policy, max(base - leaving[did], 0), len(kids))
        if op.action is Action.DELETE:
            removed.add(did)
        ops.append(op)
    return ops


# -- helpers -------------------------------------------------------------------------------


# customData that mirrors what Authing holds itself (a user's memberships, a department's
# parent): written with any other change, never alone. Alone it differs only where the
# other direction made the change (downstream writes WeCom's memberships and moves, not
# these mirrors), so writing it would be a missed echo's write; the mirror catches up with
# the next write that change brings.
_MIRRORS = frozenset({f"customData.{USER_DEPARTMENTS_FIELD}",
                      f"customData.{PARENT_DEPARTMENT_FIELD}"})

# Authing statuses that disable an account (create-user's status values,
# reference/authing-api.md §2.2). Another status (Archived, Deactivated) counts as enabled:
# the suspend policy still writes Suspended.
_DISABLED = frozenset({"Suspended", "Resigned"})
# create-user needs one of username, phone and email (reference/authing-api.md §2.2).
_CREATE_NEEDS = ("username", "mobile", "email")
# Authing's values as canonical ones (``mapping``'s tables the other way round).
_CANONICAL_GENDERS = {v: k for k, v in AUTHING_GENDERS.items()}
_CANONICAL_STATUSES = {v: k for k, v in AUTHING_STATUSES.items()}


def canonical_user(user: AuthingUser, policy: Binding, index: DepartmentIndex) -> User:
    """An Authing user as the canonical planner's target record: linked to its
    externalId, ours by ``is_managed_user``; a field Authing has no value for is known
    empty (``""``), a status outside Authing's three keeps its own text (so the planner
    writes the one WeCom's status maps to), a phone without its code has the default. No
    gender is Authing's ``U``, as WeCom's 0 (未定义) is: neither is written over the
    other."""
    status, gender = user.status, user.gender
    mobile = f"{user.phone_country_code or policy.mapping.default_country_code}-{user.phone}" \
        if user.phone else ""
    fields = {"name": user.name or "", "username": user.username or "", "mobile": mobile,
              "email": user.email or "", "gender": _CANONICAL_GENDERS.get(gender, gender)
              if gender else "unknown", "avatar": user.photo or "",
              "status": _CANONICAL_STATUSES.get(status, status) if status else ""}
    return User(user.external_id or "", user.user_id, fields,
                enabled=None if status is None else status not in _DISABLED,
                resigned=None if status is None else status == "Resigned",
                custom=user.custom_data, managed=is_managed_user(user, policy, index),
                record=user)


def _policy(binding: Binding) -> directory.Policy:
    """The canonical planner's rules for ``binding``: made once per binding, as every
    planned user needs them (the last one is kept, by identity)."""
    cached = _POLICY_CACHE.get(id(binding))
    if cached is not None and cached[0] is binding:
        return cached[1]
    rules = directory.Policy(delete=str(binding.user_delete_policy),
                             adopt=binding.adopt_existing, relink=True,
                             create_needs=_CREATE_NEEDS)
    _POLICY_CACHE.clear()
    _POLICY_CACHE[id(binding)] = (binding, rules)
    return rules


_POLICY_CACHE: dict[int, tuple[Binding, directory.Policy]] = {}



def _dept_ref(wecom_id: int, index: DepartmentIndex) -> str | DepartmentRef:
    return index.authing_id(wecom_id) or DepartmentRef(department_open_id(wecom_id))


def _source_depth(dept: WeComDepartment, depts: Mapping[int, WeComDepartment]) -> int:
    depth, seen, parent = 0, {dept.id}, dept.parent_id
    while parent is not None and parent in depts and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = depts[parent].parent_id
    return depth


def _authing_depth(department_id: str, parents: Mapping[str, str | None]) -> int:
    depth, seen, parent = 0, {department_id}, parents.get(department_id)
    while parent is not None and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents.get(parent)
    return depth


def _skip(kind: Kind, key: str, reason: str, target: str | None = None, *,
          cause: Cause) -> Operation:
    return Operation(kind, key, Action.SKIP, target, reason=reason, cause=cause)


__all__ = [
    "DESTRUCTIVE", "Action", "Change", "DepartmentIndex", "DepartmentRef", "GuardVerdict",
    "Kind", "Mode", "Operation", "Request", "UnresolvedDepartment", "deletion_guard",
    "authing_path", "count_managed", "is_managed_user", "managed_department_id",
    "match_renames", "plan_department", "plan_duplicate_removal", "plan_full", "plan_user",
    "plan_user_hold", "resolve_refs",
]
