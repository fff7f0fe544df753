"""API structure + Excel attributes → one set of WeCom users (pure).

Since 2022 the contacts API may give only ids (``user/list_id``: userid and departments,
``department/simplelist``: ids and parents) to new apps and new IPs, while the admin
console still exports names, mobiles and emails. ``merge_sources`` puts the two together:

- who exists is the API's word: the result has exactly the API's users, with the API's
  spelling of each userid; Excel rows are matched case-insensitively, as WeCom compares
  userids, and rows the API does not have are dropped (gone since the export, or outside
  the app's visible range);
- structure (departments, main department, leader flags, direct leaders, open_userid,
  renames) is the API's. Where the API left part of it unknown, the Excel's is taken only
  if every department it names is one the API knows;
- attributes (name, mobile, email, position, gender, alias, telephone, address, status...)
  are the Excel's where it knows them, else the API's: the operator supplied the Excel
  for exactly these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

from sync_core.wecom.model import WeComDepartment, WeComUser

_STRUCTURE = frozenset({"userid", "renamed_from", "department", "main_department",
                        "is_leader_in_dept", "direct_leader", "open_userid"})
_ATTRIBUTES = tuple(f.name for f in fields(WeComUser) if f.name not in _STRUCTURE)


def merge_sources(api_users: Iterable[WeComUser], api_departments: Iterable[WeComDepartment],
                  excel_users: Iterable[WeComUser]) -> tuple[WeComUser, ...]:
    """The API's users, in the API's order, with the Excel's attributes (see the module).

    Raises ``ValueError`` if ``excel_users`` repeat a userid (ignoring case).
    """
    known_departments = {d.id for d in api_departments}
    by_key: dict[str, WeComUser] = {}
    for user in excel_users:
        key = user.userid.lower()
        if key in by_key:
            raise ValueError(f"the Excel users repeat the userid {user.userid!r}")
        by_key[key] = user
    return tuple(_merge_one(api, by_key.get(api.userid.lower()), known_departments)
                 for api in api_users)


def _merge_one(api: WeComUser, excel: WeComUser | None, known: set[int]) -> WeComUser:
    if excel is None:
        return api
    values = {f.name: getattr(api, f.name) for f in fields(WeComUser)}
    for name in _ATTRIBUTES:
        value = getattr(excel, name)
        if value is not None:
            values[name] = value
    excel_depts = excel.department
    if excel_depts is not None and not set(excel_depts) <= known:
        excel_depts = None  # names a department the API does not know: not evidence
    department = api.department if api.department is not None else excel_depts
    values["department"] = department
    if api.main_department is None and excel.main_department is not None and (
            department is not None and excel.main_department in department):
        values["main_department"] = excel.main_department
    if api.is_leader_in_dept is None:
        values["is_leader_in_dept"] = _realigned(department, excel_depts,
                                                 excel.is_leader_in_dept)
    return WeComUser(**values)


def _realigned(department: tuple[int, ...] | None, excel_depts: tuple[int, ...] | None,
               flags: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The Excel's leader flags in the order of ``department``, when it has one for each.

    ``_realigned((2, 3), (3, 2), (1, 0))`` → ``(0, 1)``.
    """
    if department is None or excel_depts is None or flags is None:
        return None
    if len(flags) != len(excel_depts):
        return None
    by_dept = dict(zip(excel_depts, flags, strict=True))
    if not set(department) <= by_dept.keys():
        return None
    return tuple(by_dept[d] for d in department)
