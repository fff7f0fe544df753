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
from sync_core.authing.mapping import DEPARTMENT_ID_FIELD, USER_ID_FIELD, split_mobile
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.binding import Binding
from sync_core.directory import planner
from sync_core.directory.essence import digest
from sync_core.directory.model import Department, User
from sync_core.directory.operations import (
    Action,
    Change,
    DepartmentRef,
    Mode,
    Operation,
    Request,
)
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
_WECOM_TO_CANONICAL = {0: "unknown", 1: "male", 2: "female"}
# Shown in a change's old value for a field WeCom did not show us (withheld, or reads
# refused) and that the link table says has changed since our last write.
WITHHELD = "(not shown by WeCom)"
# The fields downstream writes that WeCom may withhold on read (reference §3.3, user/get).
_MAY_WITHHOLD = ("name", "mobile", "email", "gender")

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


def canonical_mobile(mobile: str | None, default_code: str) -> str | None:
    """``"+<code>-<national>"``, the one form both sides are compared in: Authing keeps
    phone and phoneCountryCode apart, WeCom one text (``+852-61234567``, or a national
    number for the default code). A number that does not split stays as it is."""
    text = (mobile or "").replace(" ", "")
    if not text:
        return None
    split = split_mobile(text, default_code)
    return text if split is None else f"{split[0]}-{split[1]}"


def wecom_mobile(mobile: str, default_code: str) -> str:
    """A canonical mobile as WeCom is sent it: a national number for the default code
    (WeCom's own import template writes no +86), ``+<code>-<national>`` otherwise
    (reference §3.6: digits, ``+`` and ``-``)."""
    prefix = default_code + "-"
    return mobile[len(prefix):] if mobile.startswith(prefix) else mobile


def canonical_source_user(user: AuthingUser, binding: Binding, rule: str) -> User:
    default_code = binding.mapping.default_country_code
    phone = canonical_mobile(user.phone, user.phone_country_code or default_code) \
        if user.phone else None
    return User(
        key=user.user_id, target_id=wecom_userid(user, rule),
        fields={"name": user.name or None, "mobile": phone, "email": user.email,
                "gender": _GENDER_TO_CANONICAL.get(user.gender or "")},
        departments=memberships(user, binding) if user.memberships is not None else None,
        enabled=None if user.status is None else user.status in ENABLED_STATUSES)


def canonical_target_user(user: WeComUser, key: str, default_code: str = "+86") -> User:
    gender = _WECOM_TO_CANONICAL.get(user.gender) if user.gender is not None else None
    return User(
        key=key, target_id=user.userid,
        fields={"name": user.name, "mobile": canonical_mobile(user.mobile, default_code),
                "email": user.email, "gender": gender},
        departments=None if user.department is None else tuple(str(d) for d in user.department),
        enabled=None if user.status is None else user.status != WECOM_DISABLED)


class WeComRender:
    """WeCom requests for the planner's decisions (``directory.planner.Render``).
    ``default_code``: the country code WeCom's mobiles carry when they show none."""

    def __init__(self, default_code: str = "+86") -> None:
        self.default_code = default_code

    wording = planner.Wording(source="Authing", target="WeCom", key_field="userid",
                              service="wecom-sync")

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]:
        body = {"userid": user.target_id, **_wecom_fields(fields, self.default_code),
                "department": list(departments), "to_invite": False, SOURCE_KEY: user.key}
        if user.enabled is False:
            body["enable"] = 0
        return (Request("user/create", body),)

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]:
        body: dict[str, Any] = {"userid": target_id,
                                **_wecom_fields(fields, self.default_code)}
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


def _wecom_fields(fields: Mapping[str, Any], default_code: str) -> dict[str, Any]:
    body = {k: v for k, v in fields.items() if k in ("name", "mobile", "email", "position")}
    if body.get("mobile"):
        body["mobile"] = wecom_mobile(body["mobile"], default_code)
    if fields.get("gender") is not None:
        body["gender"] = _CANONICAL_TO_WECOM[fields["gender"]]
    return body


class DownstreamPlanner:
    """``binding`` here gives the organization and custom fields for ``source_essence``
    (the one port method without a binding); plans use the binding they are passed."""

    def __init__(self, policy: DownstreamPolicy, binding: Binding) -> None:
        self.policy = policy
        self.binding = binding
        self.default_code = binding.mapping.default_country_code
        self.render = WeComRender(self.default_code)

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
        if actual is not None and actual.removed:
            return (Operation(Kind.USER, key, Action.SKIP, actual.userid,
                              reason=removed_in_wecom("member", actual.userid),
                              cause=Cause.POLICY),)
        ops = self._plan_user(desired, actual, binding, self._ids(index, binding),
                              self._policy(binding), key)
        return (*self._parents_first(index, binding), *ops) if index.source else ops

    def _plan_user(self, desired: AuthingUser | None, actual: WeComUser | None,
                   binding: Binding, ids: Mapping[str, str], policy: planner.Policy,
                   key: str, linked: bool = True) -> tuple[Operation, ...]:
        """``ids`` and ``policy`` come from the caller, built once per plan: a reconcile
        plans 10^5 users against the same ones (copying ``ids`` per user was most of it).
        ``linked``: ``actual`` is this user's member by the link table or by the userid
        Authing holds (an event's target reader finds no other), not only by the userid
        rule."""
        if desired is not None and desired.status in GONE_STATUSES:
            # Resigned in Authing (離職: memberships removed, account disabled) is the
            # person leaving: the delete policy applies, as for a deleted user.
            desired = None
        want = canonical_source_user(desired, binding, self.policy.userid_source) \
            if desired is not None else None
        have = canonical_target_user(actual, key, self.default_code) \
            if actual is not None else None
        if want is not None and have is not None and linked:
            if str(want.target_id).lower() != str(have.target_id).lower():
                return (Operation(Kind.USER, key, Action.SKIP, have.target_id,
                                  reason=userid_changed(str(want.target_id),
                                                        str(have.target_id)),
                                  cause=Cause.CONFLICT),)
            if want.departments == () and want.enabled is not False:
                # Left the synced organization: a member we hold is no longer in scope,
                # so the delete policy applies (never left active). Unlinked, or with no
                # member, it is a rule problem as below.
                desired = want = None
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
            if have is None:
                policy = _create_policy(policy, want)
                if not (want.fields.get("mobile") or want.fields.get("email")):
                    problems.append(rules.NO_CONTACT)
            elif desired is not None and actual is not None and self._stale(
                    desired, want, actual, have, ids, binding):
                have = _unknown_changed(have, want)
        ops = planner.plan_user(want, have, ids, policy, self.render, key=key,
                                problems=problems)
        if desired is not None and want is not None and not problems:
            flags = _flags(desired, binding, want)
            return tuple(self._with_user_write_back(
                self._with_flags(op, want, flags, actual, ids, policy), desired, want)
                for op in ops)
        return ops

    def _with_flags(self, op: Operation, want: User, flags: _Flags, actual: WeComUser | None,
                    ids: Mapping[str, str], policy: planner.Policy) -> Operation:
        """``op`` with Authing's leader and main flags (``set-user-departments``'
        isLeader, isMainDepartment) as WeCom's ``is_leader_in_dept`` and
        ``main_department`` wherever it sends the departments; and, where it sends none
        but WeCom's flags differ from Authing's, an update that sends them. Without them
        WeCom gives a written member no leader flag and its first department as main, which
        upstream then writes back over Authing's flags (reference §6.2 of
        authing-api.md: the flags map one to one)."""
        if "department" in policy.ignore or want.departments is None or not (
                flags.leaders is not None or flags.main is not None):
            return op
        if op.action not in (Action.CREATE, Action.UPDATE, Action.UNCHANGED):
            return op
        keys = _department_keys(want.departments, ids)
        requests = list(op.requests)
        sent = False
        for i, request in enumerate(requests):
            if request.endpoint in ("user/create", "user/update") \
                    and request.body.get("department") is not None:
                requests[i] = replace(request, body=_flagged(request.body, keys, flags, ids))
                sent = True
        if sent:
            return replace(op, requests=tuple(requests))
        if actual is None or op.target is None or not policy.update \
                or actual.department is None:
            return op
        held = tuple(str(d) for d in actual.department)
        by_id = {str(ids[k]): k for k in reversed(want.departments) if k in ids}  # first wins
        held_keys = {d: by_id.get(d, d) for d in held}
        if sorted(held) != sorted(str(ids.get(k, "")) for k in want.departments):
            return op  # the planner decided the departments (or they wait for a create)
        leaders = actual.is_leader_in_dept
        old: list[str] = []
        new: list[str] = []
        unseen = False
        for n, dept in enumerate(held):
            key = held_keys[dept]
            was_leader = bool(leaders[n]) if leaders is not None \
                and len(leaders) == len(held) else None
            leader = None if flags.leaders is None else flags.leaders.get(key, False)
            was_main = None if actual.main_department is None \
                else str(actual.main_department) == dept
            main = None if flags.main is None else flags.main == key
            unseen = unseen or (leader is not None and was_leader is None) \
                or (main is not None and was_main is None)
            old.append(_shown(dept, was_leader, was_main))
            # A flag WeCom's read does not show (user/list_id, simplelist) is unknown,
            # not different: sending it would never show either, a write every run.
            new.append(_shown(dept, was_leader if leader is None or was_leader is None
                              else leader,
                              was_main if main is None or was_main is None else main))
        update = [r for r in requests if r.endpoint == "user/update"]
        if old == new and not (unseen and update):
            # Flags the read does not show go with an update written anyway (one the
            # link table's digest asked for, _stale): it records them, so the next
            # digest matches; alone they would be a write every run.
            return op
        body = _flagged({"userid": op.target, "department": list(held)}, held_keys, flags,
                        ids)
        changes = op.changes if old == new \
            else (*op.changes, Change("department", ";".join(old), ";".join(new)))
        if update:
            requests[requests.index(update[0])] = replace(
                update[0], body={**update[0].body, **body})
        else:
            requests.append(Request("user/update", body))
        return replace(op, action=Action.UPDATE, changes=changes, requests=tuple(requests))

    def _stale(self, desired: AuthingUser, want: User, actual: WeComUser, have: User,
               ids: Mapping[str, str], binding: Binding) -> bool:
        """Whether fields WeCom did not show us (withheld, or reads refused) may differ
        from Authing: the link table's digest of our last write (``actual.last_written``)
        is none of the digests writing Authing's state now would record (``essence``, the
        function that recorded it, over the same requests: an update of every field the
        member now reads as, a create, and a write that sent no departments). The visible
        fields the planner compares itself."""
        if actual.last_written is None or not (
                have.departments is None or have.enabled is None
                or any(have.fields.get(f) is None for f in _MAY_WITHHOLD)):
            return False
        fields = {k: v for k, v in want.fields.items()
                  if v is not None and k not in self.policy.ignore}
        departments = [ids[k] for k in want.departments or () if k in ids]
        userid = actual.userid
        seen = replace(actual, last_written=None)
        writes: tuple[tuple[WeComUser | None, tuple[Request, ...]], ...] = (
            (seen, self.render.update_user(userid, fields, departments, None)),
            (None, self.render.create_user(replace(want, target_id=userid), fields,
                                           departments)),
            (None, self.render.update_user(userid, fields, None, None)))
        # The flags go where the departments do (_with_flags): never with them ignored.
        flags = _flags(desired, binding, want) if "department" not in self.policy.ignore \
            else _Flags(None, None)
        keys = _department_keys(want.departments or (), ids)
        writes = tuple((before, tuple(
            replace(r, body=_flagged(r.body, keys, flags, ids))
            if r.body.get("department") is not None else r for r in requests))
            for before, requests in writes)
        digests = set()
        for before, requests in writes:
            op = Operation(Kind.USER, want.key, Action.UPDATE, userid, requests=requests)
            essence = self.essence(Kind.USER, desired, before, binding)
            digests.add(digest(essence(op) if callable(essence) else essence))
        return actual.last_written not in digests

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
        if actual is not None and actual.removed:
            return (Operation(Kind.DEPARTMENT, key, Action.SKIP, str(actual.id),
                              reason=removed_in_wecom("department", str(actual.id)),
                              cause=Cause.POLICY),)
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
        if desired is None or want is None or want.root or not ops:
            return ops
        # A create's new id goes back to Authing; so does the id of one we created whose
        # write-back failed (Authing holds none: the link table paired them).
        if ops[0].action is not Action.CREATE and (
                have is None or want.target_id is not None
                or ops[0].action not in (Action.UNCHANGED, Action.UPDATE, Action.MOVE)):
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
        written = target.linked or {}
        for key, dept in ours.items():
            # What we wrote first: a department whose id never reached Authing (its
            # write-back failed) is still the one we created.
            for wid in (written.get((Kind.DEPARTMENT, key)), wecom_department_id(dept)):
                if wid is not None and wid in wecom_depts:
                    ids[key] = wid
                    break
        members = {u.userid.lower(): u for u in target.users}
        policy = self._policy(binding)
        ops: list[Operation] = []
        claims = _claims(source.users, members, self.policy.userid_source)
        wanted_users = set(claims)
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
                holder = claims.get(userid.lower()) if userid else None
                if userid and holder is not None and holder[0] != user.user_id:
                    ops.append(Operation(Kind.USER, user.user_id, Action.SKIP, userid,
                                         reason=userid_taken(userid, holder[1], holder[0]),
                                         cause=Cause.CONFLICT))
                    continue
                actual_user = members.get(userid.lower()) if userid else None
                linked = actual_user is not None and target.managed is not None and (
                    Kind.USER, actual_user.userid) in target.managed
                ops.extend(self._plan_user(user, actual_user, binding, ids, policy,
                                           user.user_id, linked))
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
            want = canonical_source_user(desired, binding, self.policy.userid_source) \
                if desired is not None else None
            # The departments (ids resolved on the way) and the enabled state come with
            # the write.
            return functools.partial(_written_user_essence, want, actual, self.policy,
                                     self.default_code)
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


def _written_user(want: User, actual: WeComUser | None, policy: DownstreamPolicy,
                  default_code: str) -> WeComUser:
    """The member as WeCom shows it after writing ``want`` over ``actual`` (its
    departments as read: ``_written_user_essence`` puts the written ones in)."""
    base = actual or WeComUser(userid=want.target_id or want.key)
    base = replace(base, last_written=None)
    if actual is not None and not policy.update:
        return base
    values: dict[str, Any] = {}
    for name in ("name", "email"):
        if name not in policy.ignore and want.fields.get(name) is not None:
            values[name] = want.fields[name]
    if "mobile" not in policy.ignore and want.fields.get("mobile") is not None:
        values["mobile"] = wecom_mobile(want.fields["mobile"], default_code)
    gender = want.fields.get("gender")
    if "gender" not in policy.ignore and gender is not None:
        values["gender"] = int(_CANONICAL_TO_WECOM[gender])
    return replace(base, **values)


def _written_user_essence(want: User | None, actual: WeComUser | None,
                          policy: DownstreamPolicy, default_code: str,
                          op: Operation) -> dict[str, Any] | None:
    """``wecom.essence`` of the member once ``op`` (applied: department refs resolved, a
    created member's userid as its target) has run: the upstream echo check compares a
    WeCom callback's member with it, so every field the write sent must be in it: the
    departments (else a callback about a membership change downstream made looks like a
    change to bring back to Authing) and the status ``enable`` sets (else a stale digest
    lets a later change back to the old state pass for an echo). A member disabled for a
    deleted Authing user (``want`` None) has one too; a removed one has none. A status
    WeCom decides itself (where a re-enabled member returns to) is left unknown: its
    echo is missed, which costs reads, never a write."""
    if op.action is Action.DELETE or (op.target is None and want is None):
        return None
    if want is not None:
        written = _written_user(want, actual, policy, default_code)
    else:
        written = replace(actual or WeComUser(userid=str(op.target)), last_written=None)
    if actual is None:
        written = replace(written, status=WECOM_NOT_ACTIVATED)
    for request in op.requests:
        if request.endpoint not in ("user/create", "user/update"):
            continue
        body = request.body
        if body.get("department") is not None:
            written = _with_departments(written, tuple(int(d) for d in body["department"]))
        if body.get("main_department") is not None:
            written = replace(written, main_department=int(body["main_department"]))
        if "enable" in body:
            written = replace(written, status=WECOM_DISABLED if not int(body["enable"]) else (
                None if written.status in (None, WECOM_DISABLED) else written.status))
    return wecom_essence.user(written)


def _with_departments(member: WeComUser, departments: tuple[int, ...] | None) -> WeComUser:
    """``member`` in ``departments``: WeCom keeps the main department while it is one of
    them, else takes the first (we never send ``main_department``)."""
    if not departments:
        return replace(member, department=departments)
    main = member.main_department
    return replace(member, department=departments,
                   main_department=main if main in departments else departments[0])


@dataclass(frozen=True, slots=True)
class _Flags:
    """Authing's flags for a user's memberships in the organization: ``leaders`` by
    Authing department key (None: the read did not say, for one or more), ``main`` the
    main department's key (None: none named, or not said)."""

    leaders: dict[str, bool] | None
    main: str | None


def _flags(desired: AuthingUser, binding: Binding, want: User) -> _Flags:
    ours = [m for m in desired.memberships or ()
            if m.organization_code in (None, binding.organization_code)]
    leaders: dict[str, bool] | None = None
    if all(m.is_leader is not None for m in ours):
        leaders = {}
        for m in ours:
            leaders[m.department_id] = leaders.get(m.department_id, False) or bool(m.is_leader)
    main = next((m.department_id for m in ours if m.is_main), None)
    if main is not None and main not in (want.departments or ()):
        main = None
    return _Flags(leaders if ours else None, main)


def _department_keys(departments: Iterable[str], ids: Mapping[str, str]
                     ) -> dict[Any, str]:
    """A user's Authing department keys by what a WeCom write names them with: the WeCom
    id, or a placeholder for a department created in the same run."""
    return {(ids[k] if k in ids else DepartmentRef(k)): k for k in departments}


def _flagged(body: Mapping[str, Any], keys: Mapping[Any, str], flags: _Flags,
             ids: Mapping[str, str]) -> dict[str, Any]:
    """``body`` (its ``department`` list: WeCom ids or refs) with the flags WeCom takes
    beside it: ``is_leader_in_dept`` (one per department, reference §3.3: 60132 when the
    counts differ) and ``main_department``."""
    out = dict(body)
    departments = list(out["department"])
    if flags.leaders is not None:
        out["is_leader_in_dept"] = [
            1 if flags.leaders.get(keys.get(d, ""), False) else 0 for d in departments]
    if flags.main is not None:
        main = ids[flags.main] if flags.main in ids else DepartmentRef(flags.main)
        if main in departments:
            out["main_department"] = main
    return out


def _shown(dept: str, leader: bool | None, main: bool | None) -> str:
    return dept + ("[leader]" if leader else "") + ("[main]" if main else "")


def _create_policy(policy: planner.Policy, want: User) -> planner.Policy:
    """A create sends what WeCom requires even when the ignore list names it (reference
    §3.3 user/create): the name, and mobile and email when without them it would have
    neither (60129). The ignore list keeps them from every later update."""
    needed = {"name"}
    if not any(want.fields.get(f) for f in ("mobile", "email") if f not in policy.ignore):
        needed |= {"mobile", "email"}
    if not needed & policy.ignore:
        return policy
    return replace(policy, ignore=policy.ignore - needed)


def _unknown_changed(have: User, want: User) -> User:
    """``have`` with what WeCom did not show marked as different from ``want``, so the
    planner writes it: the link table says it changed since our last write."""
    fields = dict(have.fields)
    for name in _MAY_WITHHOLD:
        if fields.get(name) is None and want.fields.get(name) is not None:
            fields[name] = WITHHELD
    departments = have.departments
    if departments is None and want.departments is not None:
        departments = ()
    enabled = have.enabled
    if enabled is None and want.enabled is not None:
        enabled = not want.enabled
    return replace(have, fields=fields, departments=departments, enabled=enabled)


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


def userid_taken(userid: str, held: str, holder: str) -> str:
    """The per-item error of a second Authing user mapping to a userid taken up to case."""
    return (f"WeCom userid {userid!r} is taken: WeCom userids ignore case (reference "
            f"§3.3) and {held!r} belongs to Authing user {holder}")


def removed_in_wecom(what: str, wecom_id: str) -> str:
    """The skip of an entity WeCom deleted before upstream applied it (``both``)."""
    return (f"WeCom {what} {wecom_id} was deleted in WeCom, which upstream has not applied "
            f"yet: not re-created (the conflict rule); upstream applies the deletion")


def userid_changed(userid: str, held: str) -> str:
    """The per-item error of an Authing userid (externalId) changed after its member was
    made: WeCom renames only a userid it generated itself, once (reference §3.6), and
    downstream always gives the userid, so the member keeps it."""
    return (f"Authing now names WeCom userid {userid!r}, but this user's WeCom member is "
            f"{held!r}: WeCom cannot rename a userid it did not generate (reference §3.6); "
            f"set externalId back to {held!r}, or delete the member so that {userid!r} is "
            f"created")


def _claims(users: Iterable[AuthingUser], members: Mapping[str, WeComUser],
            rule: str) -> dict[str, tuple[str, str]]:
    """Lower-cased userid → (the Authing user that holds it, its userid as that user
    spells it). Of several Authing users mapping to one userid up to case, the one
    spelling it as the existing member does holds it, else the first one."""
    claims: dict[str, tuple[str, str]] = {}
    for user in users:
        userid = wecom_userid(user, rule)
        if not userid:
            continue
        lower = userid.lower()
        member = members.get(lower)
        if lower not in claims or (member is not None and member.userid == userid
                                   and claims[lower][1] != member.userid):
            claims[lower] = (user.user_id, userid)
    return claims


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
