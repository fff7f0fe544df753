"""The mapping of the downstream direction (Authing → WeCom) as the engine's ``Planner``
port: Authing and WeCom records become canonical ones (``directory.model``), WeCom's rules
(``wecom.rules``) are checked, and the shared pure planner (``directory.planner``) decides;
``WeComRender`` turns its decisions into WeCom requests (and the write-backs to Authing of
the ids WeCom gave).

Identity: the WeCom userid is the Authing ``externalId``, else customData
``wechatwork_user_id``, else the configured rule (``username`` or the email's local part).
A department is the WeCom department whose id Authing holds as ``openDepartmentId`` (or
customData ``wechatwork_department_id``); the organization root is WeCom's root.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sync_core.authing import essence as authing_essence
from sync_core.authing.mapping import DEPARTMENT_ID_FIELD, USER_ID_FIELD
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.binding import Binding
from sync_core.directory import planner
from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, Change, Mode, Operation, Request
from sync_core.directory.vocabulary import Cause, Kind
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.wecom import essence as wecom_essence
from sync_core.wecom import rules
from sync_core.wecom.model import WeComDepartment, WeComUser

SOURCE_KEY = "_source_key"  # in a request body: the Authing key, never sent to WeCom
PARENT_KEY = "_parent_key"  # in a department write-back: the parent's Authing key
WRITE_BACK_USER = "authing/update-user"
WRITE_BACK_DEPARTMENT = "authing/update-department"

_GENDER_TO_CANONICAL = {"M": "male", "F": "female", "U": "unknown"}
_CANONICAL_TO_WECOM = {"male": "1", "female": "2", "unknown": "0"}
_WECOM_TO_CANONICAL = {1: "male", 2: "female"}
ENABLED_STATUSES = frozenset({"Activated"})
WECOM_DISABLED = 2  # status: 已禁用
WECOM_NOT_ACTIVATED = 4  # status of a member just created (未激活)
GONE_STATUSES = frozenset({"Resigned"})  # 离职: the person left (reference §2, resign-user)


@dataclass(frozen=True, slots=True)
class DownstreamPolicy:
    update: bool = True
    ignore: frozenset[str] = frozenset()
    userid_source: str = "username"  # username | email


@dataclass(frozen=True, slots=True)
class DownstreamIndex:
    """Authing department key → WeCom id (as text), and the Authing records of departments
    WeCom lacks (to create on the way)."""

    ids: dict[str, str] = field(default_factory=dict)
    source: dict[str, AuthingDepartment] = field(default_factory=dict)


def wecom_userid(user: AuthingUser, rule: str) -> str | None:
    """externalId, else customData wechatwork_user_id, else ``rule``."""
    chosen = user.external_id or user.custom().get(USER_ID_FIELD)
    if chosen:
        return str(chosen)
    if rule == "email":
        return user.email.split("@", 1)[0] if user.email and "@" in user.email else None
    return user.username


def wecom_department_id(dept: AuthingDepartment) -> str | None:
    """The WeCom id Authing holds for ``dept``, if it is a number."""
    for value in (dept.open_department_id, dept.custom().get(DEPARTMENT_ID_FIELD)):
        if value is not None and str(value).isdigit():
            return str(int(str(value)))
    return None


def memberships(user: AuthingUser, binding: Binding) -> tuple[str, ...]:
    """The user's Authing departments in the binding's organization."""
    return tuple(dict.fromkeys(
        m.department_id for m in user.memberships or ()
        if m.organization_code in (None, binding.organization_code)))


def canonical_source_user(user: AuthingUser, binding: Binding, rule: str) -> User:
    phone = (user.phone or "").replace(" ", "") or None
    return User(
        key=user.user_id, target_id=wecom_userid(user, rule),
        fields={"name": user.name or None, "mobile": phone, "email": user.email,
                "gender": _GENDER_TO_CANONICAL.get(user.gender or "")},
        departments=memberships(user, binding) if user.memberships is not None else None,
        enabled=None if user.status is None else user.status in ENABLED_STATUSES)


def canonical_target_user(user: WeComUser, key: str) -> User:
    gender = _WECOM_TO_CANONICAL.get(user.gender) if user.gender is not None else None
    return User(
        key=key, target_id=user.userid,
        fields={"name": user.name, "mobile": user.mobile, "email": user.email,
                "gender": gender},
        departments=None if user.department is None else tuple(str(d) for d in user.department),
        enabled=None if user.status is None else user.status != WECOM_DISABLED)


class WeComRender:
    """WeCom requests for the planner's decisions (``directory.planner.Render``)."""

    wording = planner.Wording(source="Authing", target="WeCom", key_field="userid",
                              service="wecom-sync")

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]:
        body = {"userid": user.target_id, **_wecom_fields(fields),
                "department": list(departments), "to_invite": False, SOURCE_KEY: user.key}
        if user.enabled is False:
            body["enable"] = 0
        return (Request("user/create", body),)

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]:
        body: dict[str, Any] = {"userid": target_id, **_wecom_fields(fields)}
        if departments is not None:
            body["department"] = list(departments)
        if enabled is not None:
            body["enable"] = 1 if enabled else 0
        return (Request("user/update", body),)

    def remove_user(self, actual: User, action: Action) -> planner.Rendered:
        """WeCom has no resigned state: resign and suspend both disable (status 2)."""
        target = str(actual.target_id)
        if action is Action.DELETE:
            return (), (Request("user/delete", {"userid": target}),)
        return ((Change("enable", actual.enabled, False),),
                self.update_user(target, {}, None, False))

    def create_department(self, department: Department, parent: Any) -> planner.Rendered:
        return ((Change("name", None, department.name),),
                (Request("department/create", {"name": department.name, "parentid": parent,
                                               SOURCE_KEY: department.key}),))

    def update_department(self, target_id: str, name: str | None, parent: Any,
                          custom: Mapping[str, Any] | None) -> tuple[Request, ...]:
        """``custom`` is always None: downstream maps no free-form data to WeCom."""
        body: dict[str, Any] = {"id": target_id}
        if name is not None:
            body["name"] = name
        if parent is not None:
            body["parentid"] = parent
        return (Request("department/update", body),)

    def remove_department(self, actual: Department) -> planner.Rendered:
        return (), (Request("department/delete", {"id": actual.target_id}),)


def _wecom_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in fields.items() if k in ("name", "mobile", "email", "position")}
    if fields.get("gender") is not None:
        body["gender"] = _CANONICAL_TO_WECOM[fields["gender"]]
    return body


class DownstreamPlanner:
    """``binding`` here gives the organization and custom fields for ``source_essence``
    (the one port method without a binding); plans use the binding they are passed."""

    def __init__(self, policy: DownstreamPolicy, binding: Binding) -> None:
        self.policy = policy
        self.binding = binding
        self.render = WeComRender()

    def _policy(self, binding: Binding) -> planner.Policy:
        return planner.Policy(update=self.policy.update, ignore=self.policy.ignore,
                              delete=str(binding.user_delete_policy))

    def index(self, ids: Mapping[str, str], source: Mapping[str, Any]) -> DownstreamIndex:
        return DownstreamIndex(dict(ids), dict(source))

    def root(self, binding: Binding) -> tuple[str, str]:
        return binding.root_department_id, str(binding.root_wecom_id)

    def seed(self, index: DownstreamIndex) -> dict[str, str]:
        return dict(index.ids)

    def plan_user(self, desired: AuthingUser | None, actual: WeComUser | None,
                  binding: Binding, index: DownstreamIndex, key: str) -> tuple[Operation, ...]:
        ops = self._plan_user(desired, actual, binding, self._ids(index, binding),
                              self._policy(binding), key)
        return (*self._parents_first(index, binding), *ops) if index.source else ops

    def _plan_user(self, desired: AuthingUser | None, actual: WeComUser | None,
                   binding: Binding, ids: Mapping[str, str], policy: planner.Policy,
                   key: str) -> tuple[Operation, ...]:
        """``ids`` and ``policy`` come from the caller, built once per plan: a reconcile
        plans 10^5 users against the same ones (copying ``ids`` per user was most of it)."""
        if desired is not None and desired.status in GONE_STATUSES:
            # Resigned in Authing (離職: memberships removed, account disabled) is the
            # person leaving: the delete policy applies, as for a deleted user.
            desired = None
        want = canonical_source_user(desired, binding, self.policy.userid_source) \
            if desired is not None else None
        have = canonical_target_user(actual, key) if actual is not None else None
        problems: list[str] = []
        if want is not None and want.enabled is False:
            if have is None:
                # Nothing in WeCom to disable. In ``both`` this is also the remains of a
                # member deleted in WeCom (upstream suspended the account): re-creating
                # it would undo that deletion.
                return (Operation(Kind.USER, key, Action.SKIP, want.target_id,
                                  reason="disabled in Authing and not in WeCom: not created",
                                  cause=Cause.POLICY),)
            if not want.departments:
                want = replace(want, departments=None)  # disabled: its departments stay
        if want is not None:
            problems = rules.user_problems(want.target_id, want.fields.get("name"),
                                           want.departments or ())
            if want.enabled is False:
                problems = [p for p in problems if p != rules.NO_DEPARTMENT]
            elif problems == [rules.NO_DEPARTMENT]:
                # Authing adds a new user to departments after creating it: retried (and
                # dead, with this reason, if it never gets one).
                return (Operation(Kind.USER, key, Action.SKIP, want.target_id,
                                  reason=rules.NO_DEPARTMENT, cause=Cause.BLOCKED),)
        ops = planner.plan_user(want, have, ids, policy, self.render, key=key,
                                problems=problems)
        if desired is not None and want is not None and not problems:
            return tuple(self._with_user_write_back(op, desired, want) for op in ops)
        return ops

    def _with_user_write_back(self, op: Operation, desired: AuthingUser,
                              want: User) -> Operation:
        """The chosen userid goes back to Authing (externalId and wechatwork_user_id)
        once the member exists in WeCom, when Authing does not hold it yet."""
        userid = want.target_id
        custom = desired.custom()
        if op.action not in (Action.CREATE, Action.UPDATE, Action.UNCHANGED) or (
                desired.external_id == userid and custom.get(USER_ID_FIELD) == userid):
            return op
        body = {"userId": desired.user_id, "externalId": userid,
                "customData": {**custom, USER_ID_FIELD: userid}}
        return replace(op, requests=(*op.requests, Request(WRITE_BACK_USER, body)))

    def _parents_first(self, index: DownstreamIndex, binding: Binding) -> list[Operation]:
        """Creates for the departments WeCom lacks that the entity needs, parents first."""
        ids = self._ids(index, binding)
        ordered = sorted(index.source.values(),
                         key=lambda d: _depth(d.department_id, index.source))
        ops: list[Operation] = []
        for dept in ordered:
            ops.extend(self._plan_department(dept, None, binding, ids, dept.department_id))
        return ops

    def plan_department(self, desired: AuthingDepartment | None,
                        actual: WeComDepartment | None, binding: Binding,
                        index: DownstreamIndex, key: str) -> tuple[Operation, ...]:
        ops = self._plan_department(desired, actual, binding, self._ids(index, binding), key)
        return (*self._parents_first(index, binding), *ops) if index.source else ops

    def _plan_department(self, desired: AuthingDepartment | None,
                         actual: WeComDepartment | None, binding: Binding,
                         ids: Mapping[str, str], key: str,
                         level: int | None = None) -> tuple[Operation, ...]:
        """``level``: the department's WeCom level (the root is 1), when the whole tree is
        known (a reconcile); an incremental event leaves the check to WeCom."""
        want = None
        problems: list[str] = []
        if desired is not None:
            is_root = (desired.department_id == binding.root_department_id
                       or not desired.parent_department_id)
            want = Department(key, wecom_department_id(desired),
                              rules.department_name(desired.name),
                              None if is_root else desired.parent_department_id, root=is_root)
            if not is_root:
                problems = rules.department_problems(want.name, level)
        have = None if actual is None else Department(
            key, str(actual.id), actual.name,
            None if actual.parent_id is None else str(actual.parent_id))
        ops = planner.plan_department(want, have, ids, self._policy(binding), self.render,
                                      key=key, problems=problems)
        if desired is None or not ops or ops[0].action is not Action.CREATE:
            return ops
        body = {"organizationCode": binding.organization_code,
                "departmentId": desired.department_id, SOURCE_KEY: key,
                PARENT_KEY: desired.parent_department_id, "customData": desired.custom()}
        op = ops[0]
        return (replace(op, requests=(*op.requests, Request(WRITE_BACK_DEPARTMENT, body))),
                *ops[1:])

    def _ids(self, index: DownstreamIndex, binding: Binding) -> dict[str, str]:
        root_key, root_id = self.root(binding)
        return {**index.ids, root_key: root_id}

    def plan_all(self, source: SourceSnapshot, target: TargetSnapshot, binding: Binding,
                 mode: Mode) -> tuple[Operation, ...]:
        """Everything: departments parent-first, then users; with deletes (full,
        delete_only), the WeCom members and departments downstream wrote (``managed``)
        that no Authing record maps to any more: users first, departments children-first.
        """
        ours = {d.department_id: d for d in source.departments
                if d.organization_code in (None, binding.organization_code)}
        wecom_depts = {str(d.id): d for d in target.departments}
        root_key, root_id = self.root(binding)
        ids = {root_key: root_id}
        for key, dept in ours.items():
            wid = wecom_department_id(dept)
            if wid is not None and wid in wecom_depts:
                ids[key] = wid
        members = {u.userid.lower(): u for u in target.users}
        policy = self._policy(binding)
        ops: list[Operation] = []
        wanted_users: set[str] = set()
        for user in source.users:
            userid = wecom_userid(user, self.policy.userid_source)
            if userid:
                wanted_users.add(userid.lower())
        if mode is not Mode.DELETE_ONLY:
            for dept in sorted(ours.values(), key=lambda d: _depth(d.department_id, ours)):
                if dept.department_id == root_key:
                    continue
                actual = wecom_depts.get(ids.get(dept.department_id, ""))
                level = _depth(dept.department_id, ours) + 2  # below the root, level 1
                ops.extend(self._plan_department(dept, actual, binding, ids, dept.department_id,
                                                 level))
            for user in source.users:
                userid = wecom_userid(user, self.policy.userid_source)
                actual_user = members.get(userid.lower()) if userid else None
                ops.extend(self._plan_user(user, actual_user, binding, ids, policy,
                                           user.user_id))
        if mode is not Mode.CREATE_UPDATE and target.managed is not None:
            for member in target.users:
                if ((Kind.USER, member.userid) in target.managed
                        and member.userid.lower() not in wanted_users):
                    ops.extend(planner.plan_user(None, canonical_target_user(member, member.userid),
                                                 ids, policy, self.render, key=member.userid))
            mapped = set(ids.values())
            parents = {str(d.id): str(d.parent_id) for d in target.departments}
            gone = [d for d in target.departments if (Kind.DEPARTMENT, str(d.id)) in target.managed
                    and str(d.id) not in mapped]
            for dept in sorted(gone, key=lambda d: -_wecom_depth(str(d.id), parents)):
                ops.extend(planner.plan_department(
                    None, Department(str(dept.id), str(dept.id), dept.name, None), ids, policy,
                    self.render, key=str(dept.id)))
        return tuple(ops)

    def managed(self, target: TargetSnapshot, binding: Binding) -> int:
        if target.managed is not None:
            return len(target.managed)
        return len(target.users) + len(target.departments)

    def user_departments(self, desired: AuthingUser | None, actual: WeComUser | None,
                         binding: Binding) -> tuple[set[str], dict[str, str]]:
        return (set(memberships(desired, binding)) if desired is not None else set()), {}

    def parent(self, department: AuthingDepartment) -> str | None:
        return department.parent_department_id or None

    def source_key(self, kind: Kind, record: AuthingUser | AuthingDepartment) -> str:
        return record.user_id if isinstance(record, AuthingUser) else record.department_id

    def linked_key(self, kind: Kind, record: WeComUser | WeComDepartment) -> str | None:
        return None  # WeCom holds no Authing key: the link table does

    def depths(self, departments: Iterable[AuthingDepartment]) -> dict[str, int]:
        source = {d.department_id: d for d in departments}
        return {key: _depth(key, source) for key in source}

    def essence(self, kind: Kind, desired: Any, actual: Any, binding: Binding
                ) -> Callable[[Operation], dict[str, Any] | None] | None:
        """What WeCom will show after the write, in ``wecom.essence`` form: the echo
        check of the upstream direction compares a WeCom callback's state with it. A
        function of the applied operation (``engine.run_log.written``): every field the
        write sent (departments and ids as resolved on the way, ``enable`` as the status)
        replaces the one read before it, so the digest is never that of a stale state. A
        member disabled for a deleted Authing user has an essence too (its callback is
        our own write coming back); a removed one has none."""
        if kind is Kind.USER:
            return functools.partial(_written_user, actual)
        if desired is None:
            return None
        # The id (a create's) and the parent's id (resolved on the way) come with the write.
        return functools.partial(_written_department, desired, actual)

    def source_essence(self, kind: Kind, record: Any) -> dict[str, Any] | None:
        if record is None:
            return None
        if kind is Kind.USER:
            return authing_essence.read_user(record, self.binding)
        return authing_essence.read_department(record, self.binding)


def _written_user(actual: WeComUser | None, op: Operation) -> dict[str, Any] | None:
    """What WeCom shows once ``op`` (applied: its departments resolved, a created
    member's userid as its target) has run against ``actual``. A value WeCom decides
    itself and we cannot know (the status a re-enabled member returns to) is left
    unknown: its echo is then missed, which costs reads, never a write."""
    if op.target is None or op.action is Action.DELETE:
        return None
    record = actual or WeComUser(userid=str(op.target), status=WECOM_NOT_ACTIVATED)
    for request in op.requests:
        if request.endpoint not in ("user/create", "user/update"):
            continue
        body = request.body
        values: dict[str, Any] = {k: body[k] for k in ("name", "mobile", "email", "position")
                                  if k in body}
        if "gender" in body:
            values["gender"] = int(body["gender"]) or None  # 0: undefined, read as unknown
        if "department" in body:
            departments = tuple(int(d) for d in body["department"])
            main = record.main_department
            values["department"] = departments
            values["main_department"] = main if main in departments else (
                departments[0] if departments else None)
        if "enable" in body:
            values["status"] = WECOM_DISABLED if not int(body["enable"]) else (
                None if record.status in (None, WECOM_DISABLED) else record.status)
        record = replace(record, **values)
    return wecom_essence.user(record)


def department_essence(dept_id: Any, name: str | None, parent: Any) -> dict[str, Any]:
    """A department as WeCom shows it (``wecom.essence``), from ids as text or numbers."""
    return wecom_essence.department(WeComDepartment(
        int(dept_id), name, None if parent is None else int(parent)))


def _written_department(desired: AuthingDepartment, actual: WeComDepartment | None,
                        op: Operation) -> dict[str, Any] | None:
    """What WeCom shows once ``op`` (applied: its refs resolved, a created department's
    id as its target) has run against ``actual``."""
    if op.target is None:
        return None
    name = actual.name if actual is not None else rules.department_name(desired.name)
    parent: Any = actual.parent_id if actual is not None else None
    for request in op.requests:
        if request.endpoint in ("department/create", "department/update"):
            name = request.body.get("name", name)
            parent = request.body.get("parentid", parent)
    return department_essence(op.target, name, parent)


def _wecom_depth(key: str, parents: Mapping[str, str]) -> int:
    depth, seen = 0, {key}
    parent = parents.get(key)
    while parent is not None and parent in parents and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents.get(parent)
    return depth


def _depth(key: str, source: Mapping[str, AuthingDepartment]) -> int:
    depth, seen = 0, {key}
    parent = source[key].parent_department_id if key in source else None
    while parent is not None and parent in source and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = source[parent].parent_department_id
    return depth
