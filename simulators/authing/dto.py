"""Rendering records as the v3 DTOs (``UserDto``, ``DepartmentDto``, ``OrganizationDto``)
and as the internal, v2-style objects webhook payloads carry (reference §4.3)."""

from __future__ import annotations

from typing import Any

from .records import Department, Organization, User, iso

DEFAULT_PHOTO = "https://files.authing.co/authing-console/default-user-avatar.png"
STRING_FIELDS = (
    "email", "phone", "phoneCountryCode", "username", "externalId", "name", "nickname", "photo",
    "birthdate", "country", "province", "city", "address", "streetAddress", "postalCode",
    "company", "browser", "device", "givenName", "familyName", "middleName", "profile",
    "preferredUsername", "website", "zoneinfo", "locale", "formatted", "region",
    "identityNumber",
)
BOOL_FIELDS = ("emailVerified", "phoneVerified")
USER_STATUSES = ("Activated", "Suspended", "Resigned", "Archived", "Deactivated")
GENDERS = ("M", "F", "U")


def _profile(user: User) -> dict[str, Any]:
    """Every profile field, with Authing's defaults for the unset ones."""
    out: dict[str, Any] = {name: user.profile.get(name) for name in STRING_FIELDS}
    out["photo"] = user.profile.get("photo") or DEFAULT_PHOTO
    out["gender"] = user.profile.get("gender", "U")
    out.update({name: bool(user.profile.get(name, False)) for name in BOOL_FIELDS})
    return out


def user_dto(user: User, *, with_custom: bool = False, with_departments: bool = False,
             flat_custom: bool = False, with_identities: bool = False,
             with_post: bool = False) -> dict[str, Any]:
    dto: dict[str, Any] = {
        "userId": user.user_id, "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at), "status": user.status,
        "workStatus": "Closed" if user.status == "Resigned" else "Active",
        "statusChangedAt": iso(user.status_changed_at),
    }
    dto.update(_profile(user))
    dto.update(userSourceType=user.source_type, userSourceId=None, signedUp=None,
               loginsCount=0, lastLogin=None, lastIp=None,
               mainDepartmentId=user.main_department_id)
    if with_departments:
        dto["departmentIds"] = list(user.departments)
    if with_identities:
        dto["identities"] = []
    if with_post:
        dto["postIdList"] = []
    return _with_custom(dto, user.custom_data, with_custom, flat_custom)


def department_dto(dept: Department, parent: Department | None, *, with_custom: bool = False,
                   flat_custom: bool = False) -> dict[str, Any]:
    dto: dict[str, Any] = {
        "organizationCode": dept.org_code, "departmentId": dept.department_id,
        "createdAt": iso(dept.created_at), "updatedAt": iso(dept.updated_at),
        "openDepartmentId": dept.open_department_id, "name": dept.name,
        "leaderUserIds": list(dept.leader_user_ids), "description": dept.description,
        "parentDepartmentId": parent.department_id if parent else None,
        "code": dept.code, "parentDepartmentCode": parent.code if parent else None,
        "membersCount": len(dept.members), "hasChildren": bool(dept.children),
        "isVirtualNode": dept.is_virtual_node, "i18n": dept.i18n, "status": dept.status,
        "postIdList": list(dept.post_id_list), "allow": None,
    }
    return _with_custom(dto, dept.custom_data, with_custom, flat_custom)


def organization_dto(org: Organization, root: Department, *,
                     with_custom: bool = False) -> dict[str, Any]:
    dto: dict[str, Any] = {
        "organizationCode": org.code, "organizationName": org.name,
        "description": org.description, "createdAt": iso(org.created_at),
        "updatedAt": iso(org.updated_at), "departmentId": root.department_id,
        "openDepartmentId": root.open_department_id, "hasChildren": bool(root.children),
        "leaderUserIds": list(root.leader_user_ids), "membersCount": len(root.members),
        "isVirtualNode": False, "i18n": root.i18n, "tenantId": None, "postIdList": [],
        "status": root.status,
    }
    return _with_custom(dto, root.custom_data, with_custom, False)


def _with_custom(dto: dict[str, Any], custom: dict[str, Any], nested: bool,
                 flat: bool) -> dict[str, Any]:
    """``withCustomData`` nests the values; ``flatCustomData`` lifts them to the top."""
    if nested:
        dto["customData"] = dict(custom)
    if flat:
        for key, value in custom.items():
            dto.setdefault(key, value)
    return dto


def v2_user(user: User, userpool_id: str) -> dict[str, Any]:
    """The user object webhooks carry: internal names (``id``, ``userPoolId``)."""
    obj: dict[str, Any] = {"id": user.user_id, "userPoolId": userpool_id, **_profile(user)}
    obj.update(status=user.status, createdAt=iso(user.created_at),
               updatedAt=iso(user.updated_at), mainDepartmentId=user.main_department_id,
               mainDepartmentCode=None, customData=dict(user.custom_data))
    return obj


def v2_node(dept: Department, org: Organization) -> dict[str, Any]:
    """A department as webhook samples show nodes: ``id``, ``orgId``, ``name``, ``code``.

    Deliberately without ``openDepartmentId``: the reference says payloads use internal
    names, so a consumer must map ids itself or re-fetch with the v3 API.
    """
    return {
        "id": dept.department_id, "orgId": org.org_id, "name": dept.name,
        "nameI18n": dept.i18n, "description": dept.description, "code": dept.code,
        "order": None, "leaderUserIds": list(dept.leader_user_ids),
        "isRoot": dept.parent_id is None, "createdAt": iso(dept.created_at),
        "updatedAt": iso(dept.updated_at),
    }


def v2_organization(org: Organization, userpool_id: str) -> dict[str, Any]:
    return {"id": org.org_id, "userPoolId": userpool_id, "rootNodeId": org.root_id,
            "code": org.code, "name": org.name, "createdAt": iso(org.created_at),
            "updatedAt": iso(org.updated_at)}
