"""The whole Authing organization for the reconciler (the target state of upstream).

A read that fails raises: without the full actual state a plan would create duplicates.
"""

from __future__ import annotations

from typing import Any

from sync_core.authing.client import AuthingClient
from sync_core.authing.model import OTHER_ORGANIZATION, AuthingDepartment, AuthingUser
from sync_core.binding import Binding
from sync_core.engine.ports import TargetSnapshot


async def read_authing(client: AuthingClient, policy: Binding) -> TargetSnapshot:
    """Every user of the pool and every department of the organization, with memberships
    rebuilt from ``departmentIds``, ``mainDepartmentId`` and each department's
    ``leaderUserIds`` (one call per 50 users rather than one per user). A department not
    among the organization's is another organization's (``OTHER_ORGANIZATION``)."""
    org = await client.get_organization()
    root = str(org["departmentId"]) if org and org.get("departmentId") else None
    raw_depts = await client.get_all_departments()
    departments = [AuthingDepartment.from_dto(d) for d in raw_depts]
    by_id: dict[str, dict[str, Any]] = {str(d["departmentId"]): d for d in raw_depts}
    if root is not None:
        by_id.setdefault(root, {"departmentId": root, "openDepartmentId":
                                str(policy.root_wecom_id), "leaderUserIds":
                                (org or {}).get("leaderUserIds") or []})
    users = [AuthingUser.from_dto(dto, _memberships(dto, by_id, policy))
             async for dto in client.list_users()]
    return TargetSnapshot(tuple(users), tuple(departments), root)


def _memberships(dto: dict[str, Any], departments: dict[str, dict[str, Any]],
                 policy: Binding) -> list[dict[str, Any]] | None:
    ids = dto.get("departmentIds")
    if ids is None:
        return None
    main = dto.get("mainDepartmentId")
    items = []
    for dept_id in ids:
        dept = departments.get(str(dept_id))
        items.append({
            "departmentId": str(dept_id),
            "openDepartmentId": dept.get("openDepartmentId") if dept else None,
            "organizationCode": policy.organization_code if dept else OTHER_ORGANIZATION,
            "isLeader": bool(dept and dto.get("userId") in (dept.get("leaderUserIds") or ())),
            "isMainDepartment": main is not None and str(main) == str(dept_id),
        })
    return items
