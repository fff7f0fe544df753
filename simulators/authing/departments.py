"""Organizations (trees) and their departments.

Rules: organizationCode at most 64 characters and unique; openDepartmentId and code unique
per organization; the root is addressable as ``root``; a department with children or members
cannot be deleted (reference §2.5: "在删除部门前需要移除部门内子部门及用户"); a department
cannot move under itself or its own descendant.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .base import StateBase
from .dto import v2_node, v2_organization
from .errors import (
    bad_param,
    bad_request,
    conflict,
    department_not_found,
    refused,
    user_not_found,
)
from .params import Params
from .records import Department, Organization, new_id

MAX_ORG_CODE = 64
ORG_CREATE_PROPS = {"organizationName", "organizationCode", "description", "openDepartmentId",
                    "i18n", "tenantId", "postIdList", "metadata"}
ORG_UPDATE_PROPS = {"organizationCode", "organizationNewCode", "organizationName",
                    "description", "openDepartmentId", "leaderUserIds", "i18n", "tenantId",
                    "postIdList"}
DEPT_CREATE_PROPS = {"organizationCode", "name", "parentDepartmentId", "openDepartmentId",
                     "description", "code", "isVirtualNode", "i18n", "customData",
                     "departmentIdType", "postIdList", "tenantId", "metadata"}
DEPT_UPDATE_PROPS = {"organizationCode", "departmentId", "departmentIdType", "name",
                     "parentDepartmentId", "leaderUserIds", "description", "code", "i18n",
                     "status", "customData", "postIdList", "tenantId", "metadata"}
DEPT_ID_TYPES = ("department_id", "open_department_id", "sync_relation", "custom_field", "code")


def check_org_code(code: Any, name: str = "organizationCode") -> str:
    if not isinstance(code, str) or not code.strip():
        raise bad_request(f"invalid organization code: {code if isinstance(code, str) else ''}")
    if len(code) > MAX_ORG_CODE:
        raise bad_param(name)
    return code


class DepartmentsMixin(StateBase):
    # organizations ----------------------------------------------------------------------
    def create_organization(self, body: dict[str, Any]) -> Organization:
        p = Params(body)
        p.only(ORG_CREATE_PROPS)
        code = check_org_code(p.get("organizationCode"))
        name = p.req("organizationName")
        open_id = p.text("openDepartmentId")
        if code in self.orgs:
            raise conflict(f"organization code already exists: {code}")
        if open_id is not None and not open_id.strip():
            raise bad_param("openDepartmentId")
        now = self.clock.now_ms()
        org = Organization(org_id=new_id(), code=code, name=name, root_id=new_id(),
                           created_at=now, updated_at=now, description=p.text("description"))
        root = Department(department_id=org.root_id, org_code=code, name=name, parent_id=None,
                          created_at=now, updated_at=now, open_department_id=open_id,
                          description=org.description, i18n=p.obj("i18n"))
        self.orgs[code] = org
        self.departments[root.department_id] = root
        if open_id is not None:
            org.open_index[open_id] = root.department_id
        self.changed()
        self.emit("organization:created", lambda: {
            "organization": v2_organization(org, self.userpool_id),
            "rootNode": v2_node(root, org)})
        return org

    def update_organization(self, body: dict[str, Any]) -> Organization:
        p = Params(body)
        p.only(ORG_UPDATE_PROPS)
        org = self.org(check_org_code(p.get("organizationCode")))
        root = self.departments[org.root_id]
        new_code = p.text("organizationNewCode")
        if new_code is not None and new_code != org.code:
            check_org_code(new_code, "organizationNewCode")
            if new_code in self.orgs:
                raise conflict(f"organization code already exists: {new_code}")
        fields: dict[str, Any] = {k: p.get(k) for k in ("organizationName", "description",
                                                       "openDepartmentId", "leaderUserIds",
                                                       "i18n") if p.has(k)}
        if "organizationName" in fields:
            fields["name"] = p.req("organizationName")
            del fields["organizationName"]
        updates = self._update_node(org, root, fields)
        if "name" in updates:
            org.name = root.name
        if "description" in updates:
            org.description = root.description
        if new_code is not None and new_code != org.code:
            self._rename_org(org, new_code)
            updates["code"] = new_code
        if updates:
            org.updated_at = root.updated_at
        return org

    def _rename_org(self, org: Organization, new_code: str) -> None:
        del self.orgs[org.code]
        org.code = new_code
        self.orgs[new_code] = org
        for dept in [self.departments[org.root_id], *self.descendants(
                self.departments[org.root_id])]:
            dept.org_code = new_code
        self.changed()

    def delete_organization(self, code: str) -> None:
        """Deletes the whole tree ("删除组织机构树"); members lose those memberships."""
        org = self.org(check_org_code(code))
        root = self.departments[org.root_id]
        for dept in [root, *self.descendants(root)]:
            for user_id in list(dept.members):
                with self.muted():
                    self.leave(self.users[user_id], dept)
            del self.departments[dept.department_id]
        del self.orgs[org.code]
        self.changed()
        self.emit("organization:deleted",
                  lambda: {"organization": v2_organization(org, self.userpool_id)})

    # departments ------------------------------------------------------------------------
    def resolve(self, org_code: Any, department_id: Any, id_type: str | None) -> Department:
        """Find a department of an organization by id of the given type (``root`` = root)."""
        org = self.org(check_org_code(org_code))
        id_type = id_type or "department_id"
        if id_type not in DEPT_ID_TYPES:
            raise bad_param("departmentIdType")
        if not isinstance(department_id, str) or not department_id:
            raise bad_param("departmentId")
        if id_type == "department_id":
            found = org.root_id if department_id == "root" else department_id
        elif id_type == "open_department_id":
            found = org.open_index.get(department_id, "")
        elif id_type == "code":
            found = org.code_index.get(department_id, "")
        else:  # sync_relation / custom_field: the simulator holds no such relations
            found = ""
        dept = self.departments.get(found)
        if dept is None or dept.org_code != org.code:
            raise department_not_found(department_id)
        return dept

    def create_department(self, body: dict[str, Any]) -> Department:
        p = Params(body)
        p.only(DEPT_CREATE_PROPS)
        org_code = check_org_code(p.get("organizationCode"))
        name = p.req("name")
        parent = self.resolve(org_code, p.req("parentDepartmentId"),
                              p.text("departmentIdType", choices=DEPT_ID_TYPES))
        org = self.orgs[org_code]
        open_id, code = p.text("openDepartmentId"), p.text("code")
        self._check_keys(org, open_id, code, None)
        custom = self.fields.check_data("DEPARTMENT", p.get("customData") or {})
        now = self.clock.now_ms()
        dept = Department(department_id=new_id(), org_code=org_code, name=name,
                          parent_id=parent.department_id, created_at=now, updated_at=now,
                          open_department_id=open_id, code=code,
                          description=p.text("description"),
                          custom_data={k: v for k, v in custom.items() if v is not None},
                          is_virtual_node=p.flag("isVirtualNode"), i18n=p.obj("i18n"),
                          post_id_list=p.texts("postIdList", max_len=None) or [])
        self.departments[dept.department_id] = dept
        parent.children[dept.department_id] = None
        if open_id is not None:
            org.open_index[open_id] = dept.department_id
        if code is not None:
            org.code_index[code] = dept.department_id
        self.changed()
        self.emit("organization:node-added", lambda: {
            "node": v2_node(dept, org), "organization": v2_organization(org, self.userpool_id),
            "parentNode": v2_node(parent, org)})
        return dept

    def _check_keys(self, org: Organization, open_id: str | None, code: str | None,
                    dept: Department | None) -> None:
        for value, index, label in ((open_id, org.open_index, "openDepartmentId"),
                                    (code, org.code_index, "code")):
            if value is None:
                continue
            if not value.strip():
                raise bad_param(label)
            owner = index.get(value)
            if owner is not None and (dept is None or owner != dept.department_id):
                raise conflict(f"{label} already exists in organization {org.code}: {value}")

    def update_department(self, body: dict[str, Any]) -> Department:
        p = Params(body)
        p.only(DEPT_UPDATE_PROPS)
        dept = self.resolve(p.get("organizationCode"), p.req("departmentId"),
                            p.text("departmentIdType", choices=DEPT_ID_TYPES))
        org = self.orgs[dept.org_code]
        new_parent = None
        if p.get("parentDepartmentId") is not None:
            # departmentIdType names the type of departmentId only; the parent is an Authing id.
            new_parent = self.resolve(org.code, p.req("parentDepartmentId"), "department_id")
            if new_parent.department_id == dept.parent_id:
                new_parent = None
            elif dept.parent_id is None:
                raise refused("the root department cannot be moved")
            elif new_parent is dept or new_parent in self.descendants(dept):
                raise refused("cannot move a department under itself or its descendant")
        fields = {k: p.get(k) for k in ("name", "description", "code", "leaderUserIds", "i18n",
                                        "status", "customData", "postIdList") if p.has(k)}
        if "name" in fields:
            fields["name"] = p.req("name")
        if "status" in fields:
            fields["status"] = p.flag("status")
        if fields.get("code") is not None:
            fields["code"] = p.text("code")
            self._check_keys(org, None, fields["code"], dept)
        updates = self._update_node(org, dept, fields)
        if dept.parent_id is None and "name" in updates:
            org.name = dept.name
        if new_parent is not None:
            self._move(org, dept, new_parent)
        return dept

    def set_department_custom_data(self, dept: Department, data: dict[str, Any]) -> None:
        self._update_node(self.orgs[dept.org_code], dept, {"customData": data})

    def _update_node(self, org: Organization, dept: Department,
                     fields: dict[str, Any]) -> dict[str, Any]:
        """Apply validated field changes; answers what really changed (for webhooks)."""
        custom = self.fields.check_data("DEPARTMENT", fields.pop("customData", None) or {})
        leaders = fields.get("leaderUserIds")
        if leaders is not None:
            if not isinstance(leaders, list) or not all(isinstance(u, str) for u in leaders):
                raise bad_param("leaderUserIds")
            for user_id in leaders:
                if user_id not in self.users:
                    raise user_not_found()
        if "openDepartmentId" in fields:
            open_id = fields["openDepartmentId"]
            if open_id is not None and not isinstance(open_id, str):
                raise bad_param("openDepartmentId")
            self._check_keys(org, open_id, None, dept)
        attrs = {"name": "name", "description": "description", "code": "code",
                 "leaderUserIds": "leader_user_ids", "i18n": "i18n", "status": "status",
                 "postIdList": "post_id_list", "openDepartmentId": "open_department_id"}
        updates = {k: v for k, v in fields.items() if getattr(dept, attrs[k]) != v}
        udv = {k: v for k, v in custom.items() if dept.custom_data.get(k) != v}
        if not updates and not udv:
            return {}
        for key, value in updates.items():
            index = {"openDepartmentId": org.open_index, "code": org.code_index}.get(key)
            old = getattr(dept, attrs[key])
            if index is not None:
                if old is not None:
                    index.pop(old, None)
                if value is not None:
                    index[value] = dept.department_id
            setattr(dept, attrs[key], list(value) if isinstance(value, list) else value)
        for key, value in udv.items():
            if value is None:
                dept.custom_data.pop(key, None)
            else:
                dept.custom_data[key] = value
        dept.updated_at = self.clock.now_ms()
        self.changed()
        if updates:
            self.emit("organization:node-updated",
                      lambda: {"node": v2_node(dept, org), "updates": dict(updates)})
        for key, value in udv.items():
            self.emit("organization:udv-changed",
                      partial(self._node_udv_event, org, dept, key, value))
        return {**updates, **udv}

    def _node_udv_event(self, org: Organization, dept: Department, key: str,
                        value: Any) -> dict[str, Any]:
        spec = self.fields.get("DEPARTMENT", key)
        assert spec is not None
        return {"node": v2_node(dept, org),
                "udv": {"udfId": f"DEPARTMENT:{key}", "targetId": dept.department_id,
                        "targetType": "DEPARTMENT", "key": key, "value": value},
                "udf": {"key": key, "label": spec.label, "dataType": spec.data_type,
                        "targetType": "DEPARTMENT"}}

    def _move(self, org: Organization, dept: Department, new_parent: Department) -> None:
        old_parent = self.departments[dept.parent_id or ""]
        old_parent.children.pop(dept.department_id, None)
        new_parent.children[dept.department_id] = None
        dept.parent_id = new_parent.department_id
        dept.updated_at = self.clock.now_ms()
        self.changed()
        self.emit("organization:node-moved", lambda: {
            "node": v2_node(dept, org), "organization": v2_organization(org, self.userpool_id),
            "parentNode": v2_node(new_parent, org), "oldParent": v2_node(old_parent, org)})

    def delete_department(self, body: dict[str, Any]) -> None:
        p = Params(body)
        p.only({"organizationCode", "departmentId", "departmentIdType", "tenantId"})
        dept = self.resolve(p.get("organizationCode"), p.req("departmentId"),
                            p.text("departmentIdType", choices=DEPT_ID_TYPES))
        org = self.orgs[dept.org_code]
        if dept.parent_id is None:
            raise refused("the root department cannot be deleted; delete the organization")
        if dept.children:
            raise refused("department has child departments; delete or move them first")
        if dept.members:
            raise refused("department has members; remove them first")
        self.departments[dept.parent_id].children.pop(dept.department_id, None)
        for value, index in ((dept.open_department_id, org.open_index),
                             (dept.code, org.code_index)):
            if value is not None:
                index.pop(value, None)
        del self.departments[dept.department_id]
        self.changed()
        self.emit("organization:node-deleted", lambda: {"nodes": [v2_node(dept, org)]})
