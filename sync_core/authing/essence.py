"""What an Authing user or department shows, as an essence (see ``directory.essence``):
only the fields wecom-sync writes, in Authing's names. The same functions serve the write
side (what a planned write will leave) and the read side (what Authing shows now), so a
state we wrote hashes equal when it is read back.
"""

from __future__ import annotations

from typing import Any

from sync_core.authing.mapping import (
    DEPARTMENT_ID_FIELD,
    EXTENSION_FIELDS,
    PARENT_DEPARTMENT_FIELD,
    DesiredDepartment,
    DesiredUser,
    authing_values,
)
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.binding import Binding

# Authing field → AuthingUser attribute, for every top-level field the mapping writes.
USER_ATTRS = {"name": "name", "username": "username", "phone": "phone",
              "phoneCountryCode": "phone_country_code", "email": "email", "gender": "gender",
              "status": "status", "photo": "photo"}


def custom_keys(binding: Binding) -> frozenset[str]:
    return EXTENSION_FIELDS | {key for _, key in binding.mapping.custom_fields}


def read_user(user: AuthingUser, binding: Binding) -> dict[str, Any]:
    """What Authing shows for ``user``; memberships outside the organization are not ours."""
    values = {name: getattr(user, attr) for name, attr in USER_ATTRS.items()}
    values["phoneCountryCode"] = (values["phoneCountryCode"]
                                  or binding.mapping.default_country_code)
    custom = user.custom()
    departments = None
    if user.memberships is not None:
        departments = sorted(m.open_department_id or m.department_id for m in user.memberships
                             if m.organization_code in (None, binding.organization_code))
    return {"externalId": user.external_id, **values,
            "customData": {k: custom.get(k) for k in sorted(custom_keys(binding))},
            "departments": departments}


def written_user(want: DesiredUser, actual: AuthingUser | None,
                 binding: Binding) -> dict[str, Any]:
    """What Authing will show once the plan for ``want`` has run against ``actual``."""
    if actual is not None:
        essence = read_user(actual, binding)
    else:
        essence = {"externalId": None, **dict.fromkeys(USER_ATTRS),
                   "customData": dict.fromkeys(sorted(custom_keys(binding))),
                   "departments": []}
        essence.update(authing_values(dict(want.initial)))
        essence["phoneCountryCode"] = binding.mapping.default_country_code
        # What Authing gives a new account unless told otherwise (its read shows them).
        essence.update(gender="U", status="Activated")
    essence["externalId"] = want.external_id
    essence.update(authing_values(want.values))
    essence["customData"] = {**essence["customData"], **dict(want.custom_data)}
    if want.memberships is not None:
        essence["departments"] = sorted(str(m.department) for m in want.memberships)
    return essence


def read_department(dept: AuthingDepartment, binding: Binding) -> dict[str, Any]:
    custom = dept.custom()
    return {"openDepartmentId": dept.open_department_id, "name": dept.name,
            "customData": {k: custom.get(k)
                           for k in (DEPARTMENT_ID_FIELD, PARENT_DEPARTMENT_FIELD)}}


def written_department(want: DesiredDepartment, actual: AuthingDepartment | None,
                       binding: Binding) -> dict[str, Any]:
    essence: dict[str, Any] = (
        read_department(actual, binding) if actual is not None else
        {"openDepartmentId": None, "name": None,
         "customData": dict.fromkeys((DEPARTMENT_ID_FIELD, PARENT_DEPARTMENT_FIELD))})
    essence["openDepartmentId"] = want.open_department_id
    if want.name:
        essence["name"] = want.name
    essence["customData"] = {**essence["customData"], **dict(want.custom_data)}
    return essence
