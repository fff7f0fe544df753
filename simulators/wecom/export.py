"""The directory as files: the admin console's address-book Excel and the CSV templates.

The CSV templates are documented (reference §4): users
``姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)``
with department *ids* joined by ``;``, and departments ``部门名称,部门ID,父部门ID,排序``.

The Excel layout is *not* documented anywhere we could find, so ``ExcelLayout`` makes
the uncertain parts switchable: a title row before the header or not, ``账号`` or
``帐号``, the department path separator. Departments are written as paths from the root
(``示例科技/研发中心/后端组``), several joined by ``;``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

from openpyxl import Workbook

from .model import ACTIVE, DISABLED, NOT_ACTIVATED, QUIT, User
from .state import Directory

USER_CSV_HEADER = ("姓名", "帐号", "手机号", "邮箱", "所在部门", "职位", "性别", "是否部门内领导",
                   "排序", "别名", "地址", "座机", "禁用", "禁用项说明：(0-启用;1-禁用)")
DEPARTMENT_CSV_HEADER = ("部门名称", "部门ID", "父部门ID", "排序")

_GENDER = {"1": "男", "2": "女"}


@dataclass(frozen=True, slots=True)
class ExcelLayout:
    title_row: bool = True
    account_header: str = "账号"  # or "帐号"
    path_separator: str = "/"
    list_separator: str = ";"
    sheet_title: str = "通讯录"

    def header(self) -> tuple[str, ...]:
        return ("姓名", self.account_header, "别名", "职务", "部门", "性别", "手机", "座机",
                "个人邮箱", "企业邮箱", "地址", "激活状态", "禁用状态")


def export_xlsx(directory: Directory, layout: ExcelLayout | None = None) -> bytes:
    """The address book as the admin console's "文件导出" might produce it (``.xlsx`` bytes)."""
    layout = layout or ExcelLayout()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(layout.sheet_title)
    with directory.lock:
        paths = _department_paths(directory, layout.path_separator)
        if layout.title_row:
            stamp = time.strftime("%Y-%m-%d %H:%M")
            sheet.append([f"{directory.corp_name} 通讯录（共{len(directory.users)}人，"
                          f"导出时间：{stamp}）。说明：部门按“上级/下级”路径填写，多个部门用“;”分隔"])
        sheet.append(list(layout.header()))
        for user in directory.users:
            sheet.append(_excel_row(user, paths, layout))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_user_csv(directory: Directory) -> str:
    """The batch/syncuser / replaceuser template, filled with the current members."""
    with directory.lock:
        return _csv(USER_CSV_HEADER, (_csv_user_row(u) for u in directory.users))


def export_department_csv(directory: Directory) -> str:
    """The batch/replaceparty template, parents before children."""
    with directory.lock:
        rows = ([d.name, str(d.id), str(d.parentid), str(d.order)]
                for d in directory.departments.walk())
        return _csv(DEPARTMENT_CSV_HEADER, rows)


def _department_paths(directory: Directory, separator: str) -> dict[int, str]:
    paths: dict[int, str] = {}
    for dept in directory.departments.walk():
        parent = paths.get(dept.parentid)
        paths[dept.id] = f"{parent}{separator}{dept.name}" if parent else dept.name
    return paths


def _activation(user: User) -> str:
    if user.status == QUIT:
        return "已退出"
    if user.status == ACTIVE or (user.status == DISABLED and user.activated):
        return "已激活"
    return "未激活" if user.status in (NOT_ACTIVATED, DISABLED) else str(user.status)


def _excel_row(user: User, paths: dict[int, str], layout: ExcelLayout) -> list[str]:
    departments = layout.list_separator.join(paths[d] for d in user.department)
    return [user.name, user.userid, user.alias, user.position, departments,
            _GENDER.get(user.gender, ""), user.mobile, user.telephone, user.email,
            user.biz_mail, user.address, _activation(user),
            "已禁用" if user.status == DISABLED else "正常"]


def _csv_user_row(user: User) -> list[str]:
    def joined(values: list[int]) -> str:
        return ";".join(str(v) for v in values)

    return [user.name, user.userid, user.mobile, user.email, joined(user.department),
            user.position, _GENDER.get(user.gender, ""), joined(user.is_leader_in_dept),
            joined(user.order), user.alias, user.address, user.telephone,
            "1" if user.status == DISABLED else "0", ""]


def _csv(header: tuple[str, ...], rows: Iterator[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
