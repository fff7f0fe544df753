"""/api/v3 organization, department and membership endpoints (reference §2.3-2.5)."""

from __future__ import annotations

from typing import Any

from .api_users import dto_flags, resolve_users
from .departments import check_org_code
from .dto import department_dto, organization_dto, user_dto
from .endpoint import Deps, Endpoint
from .errors import bad_param, department_not_found
from .params import Params, page_slice
from .queries import to_ms
from .records import Department

MEMBER_PROPS = {"userIds", "organizationCode", "departmentId", "departmentIdType", "tenantId"}
SEARCH_FIELDS = ("updatedAt", "createdAt", "name")
SEARCH_OPS = ("EQUAL", "IN", "GREATER", "LESSER", "BETWEEN", "CONTAINS")


def _dept(d: Deps, dept: Department, p: Params) -> dict[str, Any]:
    return department_dto(dept, d.state.parent_of(dept), with_custom=p.flag("withCustomData"),
                          flat_custom=p.flag("flatCustomData"))


def _org(d: Deps, code: str, p: Params) -> dict[str, Any]:
    org = d.state.org(code)
    return organization_dto(org, d.state.departments[org.root_id],
                            with_custom=p.flag("withCustomData"))


def _target(d: Deps, p: Params) -> Department:
    return d.state.resolve(p.get("organizationCode"), p.req("departmentId"),
                           p.text("departmentIdType"))


# organizations ------------------------------------------------------------------------------
def create_organization(d: Deps, p: Params) -> Any:
    return _org(d, d.state.create_organization(p.data).code, p)


def update_organization(d: Deps, p: Params) -> Any:
    return _org(d, d.state.update_organization(p.data).code, p)


def delete_organization(d: Deps, p: Params) -> Any:
    p.only({"organizationCode", "tenantId"})
    d.state.delete_organization(check_org_code(p.get("organizationCode")))
    return {"success": True}


def get_organization(d: Deps, p: Params) -> Any:
    return _org(d, check_org_code(p.get("organizationCode")), p)


def list_organizations(d: Deps, p: Params) -> Any:
    orgs = list(d.state.orgs)
    if not p.flag("fetchAll"):
        page, limit = p.page()
        orgs_page = page_slice(orgs, page, limit)
    else:
        orgs_page = orgs
    return {"totalCount": len(orgs), "list": [_org(d, code, p) for code in orgs_page]}


# departments ------------------------------------------------------------------------------
def create_department(d: Deps, p: Params) -> Any:
    return department_dto(dept := d.state.create_department(p.data), d.state.parent_of(dept),
                          with_custom=True)


def update_department(d: Deps, p: Params) -> Any:
    return department_dto(dept := d.state.update_department(p.data), d.state.parent_of(dept),
                          with_custom=True)


def delete_department(d: Deps, p: Params) -> Any:
    d.state.delete_department(p.data)
    return {"success": True}


def get_department(d: Deps, p: Params) -> Any:
    code = p.text("departmentCode")
    if code is not None and p.text("departmentId") is None:
        dept = d.state.resolve(p.get("organizationCode"), code, "code")
    else:
        dept = _target(d, p)
    return _dept(d, dept, p)


def get_department_by_id(d: Deps, p: Params) -> Any:
    return _dept(d, d.state.dept(p.req("departmentId")), p)


def get_parent_department(d: Deps, p: Params) -> Any:
    parent = d.state.parent_of(_target(d, p))
    if parent is None:
        raise department_not_found("parent of the root department")
    return _dept(d, parent, p)


def list_children_departments(d: Deps, p: Params) -> Any:
    dept = _target(d, p)
    children = [d.state.departments[c] for c in dept.children]
    if p.flag("excludeVirtualNode"):
        children = [c for c in children if not c.is_virtual_node]
    if p.flag("onlyVirtualNode"):
        children = [c for c in children if c.is_virtual_node]
    if p.get("status") is not None:
        status = p.flag("status")
        children = [c for c in children if c.status == status]
    return {"totalCount": len(children), "list": [_dept(d, c, p) for c in children]}


def get_all_departments(d: Deps, p: Params) -> Any:
    """Every department below the given one (default root), breadth-first, itself excluded."""
    id_type = p.text("departmentIdType", choices=("department_id", "open_department_id"))
    dept = d.state.resolve(p.get("organizationCode"), p.text("departmentId") or "root",
                           id_type if p.get("departmentId") else "department_id")
    found = d.state.descendants(dept)
    return {"totalCount": len(found), "list": [_dept(d, x, p) for x in found]}


def search_departments_list(d: Deps, p: Params) -> Any:
    p.only({"organizationCode", "withCustomData", "withPost", "page", "limit",
            "advancedFilter", "sortBy", "orderBy", "sort", "tenantId", "keywords"})
    org = d.state.org(check_org_code(p.get("organizationCode")))
    page, limit = p.page()
    root = d.state.departments[org.root_id]
    found = [root, *d.state.descendants(root)]
    for f in p.array("advancedFilter", max_len=None) or []:
        found = [x for x in found if _dept_matches(x, f)]
    if (keywords := p.text("keywords")) is not None:
        found = [x for x in found if keywords in x.name]
    sort_by = p.text("sortBy", choices=SEARCH_FIELDS[:2])
    if sort_by is not None:
        found.sort(key=lambda x: x.updated_at if sort_by == "updatedAt" else x.created_at,
                   reverse=(p.text("orderBy", choices=("ASC", "DESC")) == "DESC"))
    return [_dept(d, x, p) for x in page_slice(found, page, limit)]


def _dept_matches(dept: Department, f: Any) -> bool:
    if not isinstance(f, dict) or f.get("field") not in SEARCH_FIELDS or \
            f.get("operator") not in SEARCH_OPS:
        raise bad_param("advancedFilter")
    field, op = f["field"], f["operator"]
    value: Any = f.get("value")
    if field == "name":
        actual: Any = dept.name
    else:
        actual = dept.updated_at if field == "updatedAt" else dept.created_at
        value = [to_ms(v) for v in value] if isinstance(value, list) else to_ms(value)
    if op in ("IN", "BETWEEN") and not isinstance(value, list):
        raise bad_param("advancedFilter")
    if op == "EQUAL":
        return bool(actual == value)
    if op == "IN":
        return actual in value
    if op == "CONTAINS":
        return str(value) in str(actual)
    if op == "BETWEEN":
        return len(value) == 2 and value[0] <= actual <= value[1]
    return bool(actual > value) if op == "GREATER" else bool(actual < value)


# membership -------------------------------------------------------------------------------
def set_user_departments(d: Deps, p: Params) -> Any:
    p.only({"userId", "departments", "options"})
    opts = p.sub("options")
    opts.only({"userIdType"})
    user = d.state.user(p.req("userId"), opts.text("userIdType"))
    d.state.set_user_departments(user, p.array("departments") or [])
    return {"success": True}


def get_user_departments(d: Deps, p: Params) -> Any:
    user = d.state.user(p.req("userId"), p.text("userIdType"))
    page, limit = p.page()
    rows = d.state.user_department_items(user, with_custom=p.flag("withCustomData"),
                                         with_paths=p.flag("withDepartmentPaths"))
    if p.text("sortBy") == "JoinDepartmentAt":
        rows.sort(key=lambda r: r["joinedAt"])
    if p.text("orderBy", choices=("Asc", "Desc")) == "Desc":
        rows.reverse()
    return {"totalCount": len(rows), "list": page_slice(rows, page, limit)}


def add_department_members(d: Deps, p: Params) -> Any:
    p.only(MEMBER_PROPS)
    dept = _target(d, p)
    d.state.add_members(dept, resolve_users(d, p.texts("userIds", required=True) or [], None))
    return {"success": True}


def remove_department_members(d: Deps, p: Params) -> Any:
    p.only(MEMBER_PROPS)
    dept = _target(d, p)
    d.state.remove_members(dept, resolve_users(d, p.texts("userIds", required=True) or [], None))
    return {"success": True}


def list_department_members(d: Deps, p: Params) -> Any:
    page, limit = p.page()
    users = d.state.members(_target(d, p), include_children=p.flag("includeChildrenDepartments"),
                            sort_by=p.text("sortBy"), order_by=p.text("orderBy"))
    return {"totalCount": len(users),
            "list": [user_dto(u, **dto_flags(p)) for u in page_slice(users, page, limit)]}


def list_department_member_ids(d: Deps, p: Params) -> Any:
    return [u.user_id for u in d.state.members(_target(d, p))]


ENDPOINTS = [
    Endpoint("create-organization", "POST", create_organization, write=True),
    Endpoint("update-organization", "POST", update_organization, write=True),
    Endpoint("delete-organization", "POST", delete_organization, write=True),
    Endpoint("get-organization", "GET", get_organization),
    Endpoint("list-organizations", "GET", list_organizations),
    Endpoint("create-department", "POST", create_department, write=True),
    Endpoint("update-department", "POST", update_department, write=True),
    Endpoint("delete-department", "POST", delete_department, write=True),
    Endpoint("get-department", "GET", get_department),
    Endpoint("get-department-by-id", "GET", get_department_by_id),
    Endpoint("get-parent-department", "GET", get_parent_department),
    Endpoint("list-children-departments", "GET", list_children_departments),
    Endpoint("get-all-departments", "GET", get_all_departments),
    Endpoint("search-departments-list", "POST", search_departments_list),
    Endpoint("set-user-departments", "POST", set_user_departments, write=True),
    Endpoint("get-user-departments", "GET", get_user_departments),
    Endpoint("add-department-members", "POST", add_department_members, write=True),
    Endpoint("remove-department-members", "POST", remove_department_members, write=True),
    Endpoint("list-department-members", "GET", list_department_members),
    Endpoint("list-department-member-ids", "GET", list_department_member_ids),
]
