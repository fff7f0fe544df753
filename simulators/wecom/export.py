"""The directory as files: the admin console's address-book Excel and the CSV templates.

The CSV templates are documented (reference §4): users
``姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)``
with department *ids* joined by ``;``, and departments ``部门名称,部门ID,父部门ID,排序``.

The Excel layouts follow reference §4. ``ExcelLayout.export_2026()`` is the admin console's
member export as of 2026: one sheet ``成员列表``, instruction rows each merged across the
columns (``填写须知：`` first), the header on row 9 (row 10 when the corp has 企业邮箱,
which adds a column after 地址 and an instruction), 14 columns, departments as ``/`` paths
from the company joined by the full-width ``；``. ``ExcelLayout.template_2020()`` is the
2020 import template (帐号, 个人邮箱, 企业简称). The default ``ExcelLayout()`` is an older
guess kept for its tests: an optional title row, then a 13-column header.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from .model import ACTIVE, DISABLED, NOT_ACTIVATED, QUIT, User
from .state import Directory

USER_CSV_HEADER = ("姓名", "帐号", "手机号", "邮箱", "所在部门", "职位", "性别", "是否部门内领导",
                   "排序", "别名", "地址", "座机", "禁用", "禁用项说明：(0-启用;1-禁用)")
DEPARTMENT_CSV_HEADER = ("部门名称", "部门ID", "父部门ID", "排序")

_GENDER = {"1": "男", "2": "女"}


_COLUMNS_2026 = ("姓名", "账号", "别名", "职务", "部门", "性别", "手机", "座机", "邮箱", "地址",
                 "视频号", "激活状态", "禁用状态", "微信插件")
_COLUMNS_2020 = ("姓名", "帐号", "别名", "职务", "部门", "性别", "手机", "座机", "个人邮箱", "地址",
                 "企业简称")
_INSTRUCTIONS = (
    "填写须知：",
    "1、请勿修改表格结构，红色字段为必填项；",
    "2、帐号：成员的唯一标识，由1-64个字母、数字、点(.)、减号(-)、下划线(_)或@组成；",
    "3、部门：上下级部门间用“/”隔开，且从最上级部门开始填写，例如“腾讯公司/微信事业群/广州研发部”；",
    "4、若成员在多个部门，部门之间用“；”隔开，第一个部门为主部门；",
    "5、手机：中国大陆手机号直接填写，其他国家或地区需加国际区号，例如“+852 61234567”；",
    "6、邮箱、手机至少填写一项；",
    "7、性别填写“男”或“女”。",
)
_BIZ_MAIL_NOTE = "8、企业邮箱：请填写企业邮箱域名下的地址。"


@dataclass(frozen=True, slots=True)
class ExcelLayout:
    """``columns`` ``None``: the legacy 13 columns (``account_header`` for the account).
    ``instructions``: rows before the header, each merged across the columns (replaces
    ``title_row``)."""

    title_row: bool = True
    account_header: str = "账号"  # or "帐号"
    path_separator: str = "/"
    list_separator: str = ";"
    sheet_title: str = "通讯录"
    columns: tuple[str, ...] | None = None
    instructions: tuple[str, ...] = ()
    enabled_word: str = "正常"  # the 禁用状态 of an enabled member

    @classmethod
    def export_2026(cls, *, biz_mail: bool = False) -> ExcelLayout:
        columns: tuple[str, ...] = _COLUMNS_2026
        notes: tuple[str, ...] = _INSTRUCTIONS
        if biz_mail:
            columns = (*columns[:10], "企业邮箱", *columns[10:])
            notes = (*notes, _BIZ_MAIL_NOTE)
        return cls(title_row=False, list_separator="；", sheet_title="成员列表",
                   columns=columns, instructions=notes, enabled_word="未禁用")

    @classmethod
    def template_2020(cls) -> ExcelLayout:
        return cls(title_row=False, list_separator="；", sheet_title="成员列表",
                   columns=_COLUMNS_2020, instructions=_INSTRUCTIONS)

    def header(self) -> tuple[str, ...]:
        if self.columns is not None:
            return self.columns
        return ("姓名", self.account_header, "别名", "职务", "部门", "性别", "手机", "座机",
                "个人邮箱", "企业邮箱", "地址", "激活状态", "禁用状态")


def export_xlsx(directory: Directory, layout: ExcelLayout | None = None) -> bytes:
    """The address book as the admin console's "文件导出" might produce it (``.xlsx`` bytes)."""
    layout = layout or ExcelLayout()
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(layout.sheet_title)
    with directory.lock:
        paths = _department_paths(directory, layout.path_separator)
        width = len(layout.header())
        for number, text in enumerate(layout.instructions, start=1):
            sheet.append([text])
            sheet.merged_cells.add(f"A{number}:{get_column_letter(width)}{number}")
        if layout.title_row and not layout.instructions:
            stamp = time.strftime("%Y-%m-%d %H:%M")
            sheet.append([f"{directory.corp_name} 通讯录（共{len(directory.users)}人，"
                          f"导出时间：{stamp}）。说明：部门按“上级/下级”路径填写，多个部门用“;”分隔"])
        sheet.append(list(layout.header()))
        header = layout.header()
        for user in directory.users:
            sheet.append(_excel_row(user, paths, layout, header, directory.corp_name))
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


def _excel_row(user: User, paths: dict[int, str], layout: ExcelLayout,
               header: tuple[str, ...], corp_name: str) -> list[str]:
    values = {
        "姓名": user.name, "账号": user.userid, "帐号": user.userid, "别名": user.alias,
        "职务": user.position,
        "部门": layout.list_separator.join(paths[d] for d in user.department),
        "性别": _GENDER.get(user.gender, ""), "手机": user.mobile, "座机": user.telephone,
        "邮箱": user.email, "个人邮箱": user.email, "企业邮箱": user.biz_mail,
        "地址": user.address, "视频号": "", "激活状态": _activation(user),
        "禁用状态": "已禁用" if user.status == DISABLED else layout.enabled_word,
        "微信插件": "已关注" if user.status == ACTIVE else "未关注", "企业简称": corp_name,
    }
    return [values[column] for column in header]


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
