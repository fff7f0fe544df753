"""Authing v3 requests for the canonical planner's decisions (``directory.planner``'s
``RemovalRender``), and the changes they make in Authing's field names as run items show
them (reference/authing-api.md §2: delete-users-batch, resign-user, update-user,
delete-department)."""

from __future__ import annotations

from typing import Any

from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, Change, Request
from sync_core.directory.planner import Rendered, Wording

WORDING = Wording(source="WeCom", target="Authing", key_field="externalId",
                  service="wecom-sync")
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
        old = _record_attr(actual, "status")
        request = (Request("resign-user", {"userId": uid}) if action is Action.RESIGN
                   else Request("update-user", {"userId": uid, "status": status}))
        return (Change("status", old, status),), (request,)

    def remove_department(self, actual: Department) -> Rendered:
        request = Request("delete-department", {"organizationCode": self.organization_code,
                                                "departmentId": actual.target_id})
        return (Change("name", actual.name, None),), (request,)


def _record_attr(record: User | Department, name: str) -> Any:
    return getattr(record.record, name, None)
