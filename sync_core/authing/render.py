"""Authing v3 requests for the canonical planner's decisions (``directory.planner``'s
``DepartmentRender``), and the changes they make in Authing's field names as run items
show them (reference/authing-api.md §2: delete-users-batch, resign-user, update-user;
create-department, update-department, delete-department)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, Change, Request
from sync_core.directory.planner import Rendered, Wording

WORDING = Wording(source="WeCom", target="Authing", key_field="externalId",
                  service="wecom-sync", custom_field="customData")
# The Authing status each disabling action writes.
_STATUS = {Action.RESIGN: "Resigned", Action.SUSPEND: "Suspended"}


class AuthingRender:
    """``organization_code``: the binding's organization, named by department writes."""

    wording = WORDING

    def __init__(self, organization_code: str) -> None:
        self.organization_code = organization_code

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

