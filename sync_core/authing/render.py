"""Authing v3 requests for the canonical planner's decisions (``directory.planner``'s
``Render``), and the changes they make in Authing's field names as run items show them
(reference/authing-api.md §2: create-user, update-user, delete-users-batch, resign-user,
set-user-departments and add-department-members; create-department, update-department,
delete-department).

Canonical user fields (``directory.model``) in Authing's names: ``mobile`` is ``phone``
plus ``phoneCountryCode`` (Authing leaves the code empty for its default region),
``avatar`` is ``photo``, ``gender`` is M/F/U, ``status`` is Activated/Suspended/Resigned;
an empty value clears a top-level field (sent as null) and is left out of a create.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sync_core.authing.essence import USER_ATTRS
from sync_core.authing.mapping import SET_DEPARTMENTS_MAX, authing_values
from sync_core.authing.model import AuthingUser
from sync_core.directory.memberships import MembershipPlan
from sync_core.directory.model import USER_FIELDS, Department, User
from sync_core.directory.operations import Action, Change, Request, UserRef
from sync_core.directory.planner import Rendered, Wording, same

WORDING = Wording(source="WeCom", target="Authing", key_field="externalId",
                  service="wecom-sync", custom_field="customData",
                  resigned="resigned in WeCom (status 5)",
                  identifiers="a username, phone or email")
# The Authing status each disabling action writes.
_STATUS = {Action.RESIGN: "Resigned", Action.SUSPEND: "Suspended"}
_KEY, _CUSTOM = "key", "custom"  # the planner's names for the link and the free-form data
_CANONICAL_FIELDS = frozenset(USER_FIELDS)


class AuthingRender:
    """``organization_code``: the binding's organization, named by department writes.
    ``user``: the Authing user an update writes over (its phone decides whether a new
    country code goes alone), and ``default_code`` the region Authing assumes for a phone
    without one."""

    wording = WORDING

    def __init__(self, organization_code: str, user: AuthingUser | None = None,
                 default_code: str = "+86") -> None:
        self.organization_code = organization_code
        self.user = user
        self.default_code = default_code
        # The changes of the last user write rendered here, in Authing's names: a render
        # serves one planned user, and ``shown`` reads them back.
        self._shown: list[Change] | None = None

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]:
        """create-user by externalId; memberships are written apart (``authing.planner``)."""
        values = self._created(user, fields)
        self._shown = [Change("externalId", None, user.key),
                       *(Change(k, None, v) for k, v in values.items())]
        body = {"externalId": user.key, **values, "customData": fields.get(_CUSTOM, {})}
        return (Request("create-user", body),)

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]:
        """update-user of ``self.user`` (by Authing userId)."""
        changes, values = self._updated(fields)
        body: dict[str, Any] = {"userId": target_id}
        if _KEY in fields:
            old = self.user.external_id if self.user is not None else None
            changes.insert(0, Change("externalId", old, fields[_KEY]))
            body["externalId"] = fields[_KEY]
        body.update(values)
        if _CUSTOM in fields:
            body["customData"] = fields[_CUSTOM]
        self._shown = changes
        return (Request("update-user", body),)

    def shown(self, changes: Sequence[Change], desired: User,
              created: bool = False) -> tuple[Change, ...]:
        """The planner's ``changes`` to ``desired`` as Authing's fields show them, in the
        source's order: for a create, what create-user sets; for an update of
        ``self.user``, old values as Authing holds them, the phone and its code apart.
        Free-form data and anything else pass as they are."""
        rest = [c for c in changes if c.field != _KEY and c.field not in _CANONICAL_FIELDS]
        if self._shown is None:  # not rendered here: render it
            new = {c.field: c.new for c in changes}
            fields = {k: new[k] for k in (*desired.fields, _KEY) if k in new}
            if created:
                self.create_user(desired, fields, ())
            else:
                self.update_user("", fields, None, None)
        return (*(self._shown or ()), *rest)

    def _created(self, user: User, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The Authing fields a create sets: ``initial`` ones first, empty ones left out."""
        initial = authing_values(dict(user.initial))
        values = {**initial, **authing_values(fields)}
        return {k: v for k, v in values.items() if v}

    def _updated(self, fields: Mapping[str, Any]) -> tuple[list[Change], dict[str, Any]]:
        """The changes and update-user fields that give ``self.user`` these values."""
        values = authing_values(fields)
        changes, body = [], {}
        for name, new in values.items():
            old = getattr(self.user, USER_ATTRS[name]) if self.user is not None else None
            if name == "phoneCountryCode":  # Authing leaves it empty for its default region
                old = old or self.default_code
            if not same(old, new):
                changes.append(Change(name, old, new))
                body[name] = new
        if body.get("phone") and "phoneCountryCode" in values:
            body["phoneCountryCode"] = values["phoneCountryCode"]
        return changes, body

    def set_departments(self, user: str, created: bool, planned: MembershipPlan,
                        department_id: Callable[[Any], Any]
                        ) -> tuple[list[Request], tuple[str, ...]]:
        """The calls that give ``user`` (an Authing userId, or the externalId of a user
        ``created`` in the same operation) exactly the ``planned`` memberships, and what
        cannot be written. ``department_id``: a source department key's Authing
        departmentId, or a ``DepartmentRef`` while it does not exist.

        set-user-departments replaces the whole list but takes at most SET_DEPARTMENTS_MAX
        departments, where WeCom allows 100 per member. Beyond that, the call carries
        first the items only it can write (main and leader flags, kept memberships outside
        our organization), and add-department-members, which adds without replacing and
        has no flags, adds the rest one department at a time (reference/authing-api.md
        §2.3). A flag or kept membership that still does not fit is reported (its
        department is joined without the flag). add-department-members takes Authing user
        ids only: a user created by externalId in the same operation is named by a
        UserRef."""
        options = {"options": {"userIdType": "external_id"}} if created else {}
        items = tuple({"departmentId": department_id(m.department), "isLeader": bool(m.leader),
                       "isMainDepartment": bool(m.main)} for m in planned.ours)
        items += tuple({"departmentId": m.department, "isLeader": bool(m.leader),
                        "isMainDepartment": bool(m.main)} for m in planned.foreign)
        if len(items) <= SET_DEPARTMENTS_MAX:
            return [Request("set-user-departments",
                            {"userId": user, "departments": items, **options})], ()
        ours = [(m.department, i) for m, i in zip(planned.ours, items, strict=False)]
        foreign = items[len(ours):]
        flagged = [(w, i) for w, i in ours if i["isLeader"] or i["isMainDepartment"]]
        plain = [(w, i) for w, i in ours if not (i["isLeader"] or i["isMainDepartment"])]
        first = [i for _, i in flagged] + list(foreign)
        room = SET_DEPARTMENTS_MAX - len(first)
        unfit: list[str] = []
        if room < 0:
            over = flagged[SET_DEPARTMENTS_MAX:] if len(flagged) > SET_DEPARTMENTS_MAX else []
            lost = first[SET_DEPARTMENTS_MAX:][len(over):]
            unfit += [f"{'leader' if i['isLeader'] else 'main'} flag for WeCom department {w} "
                      f"not written: set-user-departments takes at most {SET_DEPARTMENTS_MAX} "
                      f"departments, and more carry flags" for w, i in over]
            unfit += [f"membership in Authing department {i['departmentId']} outside "
                      f"organization {self.organization_code} not kept: set-user-departments "
                      f"takes at most {SET_DEPARTMENTS_MAX} departments" for i in lost]
            plain = over + plain
            first = first[:SET_DEPARTMENTS_MAX]
        else:
            first += [i for _, i in plain[:room]]
            plain = plain[room:]
        requests = [Request("set-user-departments",
                            {"userId": user, "departments": tuple(first), **options})]
        member: Any = UserRef(user) if created else user
        requests += [Request("add-department-members", {
            "userIds": (member,), "organizationCode": self.organization_code,
            "departmentId": i["departmentId"]}) for _, i in plain]
        return requests, tuple(unfit)

    def remove_user(self, actual: User, action: Action) -> Rendered:
        uid = str(actual.target_id)
        if action is Action.DELETE:
            return ((Change("externalId", actual.key, None),),
                    (Request("delete-users-batch", {"userIds": (uid,)}),))
        status = _STATUS[action]
        old = getattr(actual.record, "status", None)  # the AuthingUser it was mapped from
        request = (Request("resign-user", {"userId": uid}) if action is Action.RESIGN
                   else Request("update-user", {"userId": uid, "status": status}))
        return (Change("status", old, status),), (request,)

    def create_department(self, department: Department, parent: Any) -> Rendered:
        """Created with its openDepartmentId (the canonical key) and customData."""
        custom = department.custom or ()
        body = {"organizationCode": self.organization_code, "name": department.name,
                "parentDepartmentId": parent, "openDepartmentId": department.key,
                "customData": dict(custom)}
        changes = (Change("name", None, department.name),
                   Change("parent", None, department.parent),
                   *(Change(f"customData.{k}", None, v) for k, v in custom))
        return changes, (Request("create-department", body),)

    def update_department(self, target_id: str, name: str | None, parent: Any,
                          custom: Mapping[str, Any] | None) -> tuple[Request, ...]:
        body: dict[str, Any] = {"organizationCode": self.organization_code,
                                "departmentId": target_id}
        for field, value in (("name", name), ("parentDepartmentId", parent),
                             ("customData", custom)):
            if value is not None:
                body[field] = value
        return (Request("update-department", body),)

    def remove_department(self, actual: Department) -> Rendered:
        request = Request("delete-department", {"organizationCode": self.organization_code,
                                                "departmentId": actual.target_id})
        return (Change("name", actual.name, None),), (request,)

