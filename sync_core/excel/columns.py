"""Address-book columns: header names, and the cell parsers behind them (pure, no I/O).

Columns are recognised by *name*. Headers are normalised first (spaces, ``*`` required
markers, bracketed hints such as ``(必填)`` and a trailing colon are dropped, Latin letters
lower-cased), so ``"手机*"``, ``"手机 (必填)"`` and ``"手机"`` are one column. The synonym
tables are liberal in spelling and strict in meaning: a header whose meaning is uncertain
(``电话``: landline or mobile? ``直属上级``: userids or names?) is not mapped.

Parsers take a cell value (``str``, ``int``, ``float``... as openpyxl or ``csv`` gives it)
and return the canonical value, or raise ``ValueError`` with a message that names the bad
value but not its place: the reader adds the row and column.

Also here: ``ExcelSourceError``, and finding the header row by scanning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from sync_core.authing.mapping import KNOWN_CODES

_T = TypeVar("_T")
_C = TypeVar("_C", bound=Enum)

HEADER_SCAN_ROWS = 50  # a title or instructions may come first; a header lower is not one


class ExcelSourceError(ValueError):
    """The file cannot be read as an address book; nothing from it may be applied.
    ``row`` is 1-based, ``column`` the header as written, ``letter`` its column letter."""

    def __init__(self, message: str, *, sheet: str | None = None, row: int | None = None,
                 column: str | None = None, letter: str | None = None) -> None:
        self.sheet, self.row, self.column, self.letter = sheet, row, column, letter
        self.detail = message
        place = []
        if sheet is not None:
            place.append(f"sheet {sheet!r}")
        if row is not None:
            place.append(f"row {row}")
        if column is not None:
            place.append(f"column {column} ({letter})" if letter else f"column {column}")
        super().__init__(f"{', '.join(place)}: {message}" if place else message)


class Column(Enum):
    """What a user-sheet column holds."""

    USERID = "userid"
    NAME = "name"
    ALIAS = "alias"
    POSITION = "position"
    DEPARTMENT = "department"
    MAIN_DEPARTMENT = "main_department"
    LEADER = "is_leader_in_dept"
    GENDER = "gender"
    MOBILE = "mobile"
    TELEPHONE = "telephone"
    EMAIL = "email"
    BIZ_MAIL = "biz_mail"
    ADDRESS = "address"
    ENGLISH_NAME = "english_name"
    ACTIVATION = "activation"  # 激活状态: 已激活 / 未激活 / 已退出
    DISABLED = "disabled"  # 禁用状态 / the CSV template's 禁用 0|1
    STATUS = "status"  # one column with any status word or WeCom's number
    IGNORED = "ignored"  # known, carries nothing for the sync (排序, 序号, 禁用项说明)


class DepartmentColumn(Enum):
    """What a department-CSV column holds (``部门名称,部门ID,父部门ID,排序``)."""

    NAME = "name"
    ID = "id"
    PARENT = "parent_id"
    ORDER = "order"


USER_HEADERS: Mapping[str, Column] = {
    **dict.fromkeys(("账号", "帐号", "成员账号", "成员帐号", "userid", "成员userid",
                     "企业微信账号", "企业微信帐号", "英文id"), Column.USERID),
    **dict.fromkeys(("姓名", "成员姓名", "name"), Column.NAME),
    **dict.fromkeys(("别名", "alias"), Column.ALIAS),
    **dict.fromkeys(("职务", "职位", "position"), Column.POSITION),
    **dict.fromkeys(("部门", "所在部门", "部门路径", "department"), Column.DEPARTMENT),
    **dict.fromkeys(("主部门", "main_department"), Column.MAIN_DEPARTMENT),
    **dict.fromkeys(("是否部门内领导", "是否部门负责人", "是否为部门负责人", "是否领导",
                     "is_leader_in_dept"), Column.LEADER),
    **dict.fromkeys(("性别", "gender"), Column.GENDER),
    **dict.fromkeys(("手机", "手机号", "手机号码", "mobile"), Column.MOBILE),
    **dict.fromkeys(("座机", "座机号码", "固定电话", "telephone"), Column.TELEPHONE),
    **dict.fromkeys(("邮箱", "个人邮箱", "电子邮箱", "email", "e-mail"), Column.EMAIL),
    **dict.fromkeys(("企业邮箱", "biz_mail", "bizmail"), Column.BIZ_MAIL),
    **dict.fromkeys(("地址", "办公地点", "address"), Column.ADDRESS),
    **dict.fromkeys(("英文名", "english_name"), Column.ENGLISH_NAME),
    **dict.fromkeys(("激活状态",), Column.ACTIVATION),
    **dict.fromkeys(("禁用状态", "禁用", "是否禁用"), Column.DISABLED),
    **dict.fromkeys(("状态", "账号状态", "帐号状态", "status"), Column.STATUS),
    # 视频号 and 微信插件 (2026 export) and 企业简称 (2020 template): nothing to sync.
    **dict.fromkeys(("排序", "序号", "禁用项说明", "order", "视频号", "微信插件", "企业简称"),
                    Column.IGNORED),
}

DEPARTMENT_HEADERS: Mapping[str, DepartmentColumn] = {
    **dict.fromkeys(("部门名称", "名称", "name"), DepartmentColumn.NAME),
    **dict.fromkeys(("部门id", "id"), DepartmentColumn.ID),
    **dict.fromkeys(("父部门id", "上级部门id", "parentid", "parent_id"), DepartmentColumn.PARENT),
    **dict.fromkeys(("排序", "order"), DepartmentColumn.ORDER),
}

_HINT = re.compile(r"[(（\[【<《].*?[)）\]】>》]")
_SPACE = re.compile(r"\s+")


def normalize_header(value: object) -> str:
    """``" 手机号 (必填)* "`` → ``"手机号"``; ``"UserID"`` → ``"userid"``."""
    text = _SPACE.sub("", _HINT.sub("", text_of(value)))
    return text.strip("*＊").rstrip(":：").lower()


def column_letter(index: int) -> str:
    """0 → ``A``, 25 → ``Z``, 26 → ``AA``: the column as a spreadsheet shows it."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# -- cells ---------------------------------------------------------------------------------


def text_of(value: object) -> str:
    """A cell as text: ``None`` → ``""``, ``13800000000.0`` → ``"13800000000"``."""
    if type(value) is str:  # the common case first: 10^6 cells per 10^5 rows
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def is_blank(cells: Sequence[object]) -> bool:
    return not any(cell is not None and text_of(cell) for cell in cells)


_USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
_MAINLAND_MOBILE = re.compile(r"1\d{10}")
_MOBILE_NOISE = re.compile(r"[\s\-()（）.]")
# "(+852) 6123 4567", "00852-6123-4567": a code set apart from the number.
_EXPLICIT_CODE = re.compile(r"^\s*[(（]?\s*(?:\+|00)(\d{1,4})\s*[)）]?[\s\-]")
_COUNTRY_CODES = tuple(code[1:] for code in KNOWN_CODES)
_INTERNATIONAL_MOBILE = re.compile(r"\+\d{1,4}[ -]?\d(?:[ -]?\d){4,17}")
_TELEPHONE = re.compile(r"[0-9+\-, ]{1,32}")
_EMAIL = re.compile(r"[^@\s;,]+@[^@\s;,]+\.[^@\s;,.]+")
_LIST_SEPARATORS = re.compile(r"[;；]")
_PATH_SEPARATORS = re.compile(r"[/／\\>]")


def parse_userid(value: object) -> str:
    """WeCom's rule: 1~64 bytes of letters, digits and ``_-@.``, starting with a letter or
    digit ("只能由数字、字母和“_-@.”四种字符组成，且第一个字符必须是数字或字母")."""
    text = text_of(value)
    if not text:
        raise ValueError("the account is empty")
    if not _USERID.fullmatch(text) or len(text) > 64:
        raise ValueError(f"{text!r} is not a valid WeCom account (1-64 letters, digits or "
                         "_-@., starting with a letter or digit)")
    return text


def parse_name(value: object) -> str:
    text = text_of(value)
    if not text:
        raise ValueError("the name is empty")
    if len(text) > 64:
        raise ValueError(f"{text!r} is longer than WeCom's 64 characters")
    return text


def parse_mobile(value: object) -> str | None:
    """A mobile as the API gives it: mainland numbers as 11 digits starting with 1, others
    with their ``+`` country code. What admins type is accepted and normalised:
    ``138 0000 0000``, ``138-0000-0000``, ``(+86) 138 0000 0000``, ``+86 13800000000``,
    ``008613800000000`` and ``8613800000000`` (a numeric cell) → ``13800000000``;
    ``(+852) 6123 4567`` and ``00852 61234567`` → ``+852-61234567`` (WeCom's own form,
    reference §3.3); a number already written ``+<code> <number>`` is kept. A masked
    number (``138****0000``, as exported for a member whose mobile is hidden) is unknown:
    ``None``."""
    text = text_of(value)
    if "*" in text:
        return None
    if not text or _MAINLAND_MOBILE.fullmatch(text):
        return text
    compact = _MOBILE_NOISE.sub("", text).replace("＋", "+")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.isdigit() and len(compact) == 13 and compact.startswith("861"):
        compact = "+" + compact  # 8613800000000: +86 lost its "+" in a numeric cell
    if _MAINLAND_MOBILE.fullmatch(compact):
        return compact
    if compact.startswith("+86"):  # no other calling code starts with 86
        if _MAINLAND_MOBILE.fullmatch(compact[3:]):
            return compact[3:]
        raise ValueError(f"{text!r} is not a valid mobile")
    if _INTERNATIONAL_MOBILE.fullmatch(text):
        return text
    explicit = _EXPLICIT_CODE.match(text.replace("＋", "+"))
    if explicit is not None:
        code = explicit[1]
    else:
        code = next((c for c in _COUNTRY_CODES if compact.startswith("+" + c)), "")
    national = compact[1 + len(code):] if compact.startswith("+" + code) else ""
    if not code or not national.isdigit() or not 4 <= len(national) <= 14:
        raise ValueError(f"{text!r} is not a valid mobile")
    return f"+{code}-{national}"


def parse_telephone(value: object) -> str:
    """WeCom: "由1-32位的纯数字、'-'、'+'或','组成" (spaces tolerated)."""
    text = text_of(value)
    if text and not _TELEPHONE.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid telephone (digits, '-', '+' or ',')")
    return text


def parse_email(value: object) -> str | None:
    """A masked address (``z***@example.com``) is unknown: ``None``."""
    text = text_of(value)
    if "*" in text:
        return None
    if text and (not _EMAIL.fullmatch(text) or len(text) > 64):
        raise ValueError(f"{text!r} is not a valid email")
    return text


def parse_text(value: object) -> str:
    return text_of(value)


_GENDERS = {
    **dict.fromkeys(("男", "1", "m", "male"), 1),
    **dict.fromkeys(("女", "2", "f", "female"), 2),
}
_UNKNOWN_GENDER = frozenset({"", "0", "未知", "未定义", "未设置", "保密"})


def parse_gender(value: object) -> int | None:
    """``男``/``1`` → 1, ``女``/``2`` → 2; ``未知``/``0``/empty → ``None`` (as ``from_api``
    treats gender "0": not worth writing over what an admin set elsewhere)."""
    text = text_of(value).lower()
    if text in _UNKNOWN_GENDER:
        return None
    gender = _GENDERS.get(text)
    if gender is None:
        raise ValueError(f"{text!r} is not a gender (男/女/未知 or 1/2/0)")
    return gender


# WeCom statuses: 1 active, 2 disabled, 4 not activated, 5 left the corp.
_STATUS_WORDS = {
    **dict.fromkeys(("已激活", "激活", "1"), 1),
    **dict.fromkeys(("已禁用", "禁用", "2"), 2),
    **dict.fromkeys(("未激活", "4"), 4),
    **dict.fromkeys(("已退出", "退出", "退出企业", "5"), 5),
}
_ACTIVATION_WORDS = {key: value for key, value in _STATUS_WORDS.items() if value != 2}
_DISABLED_WORDS = {
    **dict.fromkeys(("已禁用", "禁用", "是", "1", "true", "yes", "y"), True),
    **dict.fromkeys(("正常", "启用", "已启用", "未禁用", "否", "0", "false", "no", "n"), False),
}


def parse_status(value: object) -> int | None:
    """One status column: ``已激活``/``已禁用``/``未激活``/``已退出`` or 1/2/4/5."""
    return _lookup(value, _STATUS_WORDS, "a status (已激活/已禁用/未激活/已退出 or 1/2/4/5)")


def parse_activation(value: object) -> int | None:
    """``激活状态``: ``已激活`` → 1, ``未激活`` → 4, ``已退出`` → 5."""
    return _lookup(value, _ACTIVATION_WORDS, "an activation state (已激活/未激活/已退出)")


def parse_disabled(value: object) -> bool | None:
    """``禁用状态``/``禁用``: ``已禁用``/``1`` → True, ``正常``/``0`` → False."""
    return _lookup(value, _DISABLED_WORDS, "a disabled flag (已禁用/正常 or 1/0)")


def combine_status(status: int | None, activation: int | None, disabled: bool | None) -> int | None:
    """WeCom reports a disabled member as 2 whatever its activation; an enabled member is
    what the activation says, and unknown (``None``) when only "enabled" is known."""
    if disabled:
        return 2
    if status is not None:
        if disabled is False and status == 2:
            raise ValueError("the status says disabled but the disabled column says enabled")
        return status
    return activation


def split_list(value: object) -> list[str]:
    """``"a;b；c"`` → ``["a", "b", "c"]`` (WeCom joins lists with ``;``; Chinese input
    methods type ``；``)."""
    return [part.strip() for part in _LIST_SEPARATORS.split(text_of(value)) if part.strip()]


def parse_flags(value: object) -> tuple[int, ...]:
    """``"1;0"`` → ``(1, 0)``; ``是``/``否`` are accepted."""
    flags = []
    for part in split_list(value):
        flag = {"1": 1, "0": 0, "是": 1, "否": 0}.get(part)
        if flag is None:
            raise ValueError(f"{part!r} is not a leader flag (1/0 or 是/否)")
        flags.append(flag)
    return tuple(flags)


def normalize_path(text: str) -> str:
    """``"示例科技 / 研发中心/后端组"`` → ``"示例科技/研发中心/后端组"``: segments trimmed,
    ``/``, ``／``, ``\\`` and ``>`` all read as the separator, empty segments dropped."""
    return "/".join(s.strip() for s in _PATH_SEPARATORS.split(text) if s.strip())


def parse_int(value: object, what: str, *, minimum: int = 0) -> int:
    text = text_of(value)
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {what}") from None
    if number < minimum:
        raise ValueError(f"{text!r} is not {what} (at least {minimum})")
    return number


def _lookup(value: object, words: Mapping[str, _T], what: str) -> _T | None:
    text = text_of(value).lower()
    if not text:
        return None
    found = words.get(text)
    if found is None:
        raise ValueError(f"{text!r} is not {what}")
    return found


# -- the header row ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderRow(Generic[_C]):
    """The header: ``row`` 0-based, ``columns`` field → 0-based position, ``labels``
    position → the header as written, ``unknown`` headers that mean nothing to us."""

    row: int
    columns: Mapping[_C, int]
    labels: Mapping[int, str]
    unknown: tuple[str, ...] = ()

    def cell(self, cells: Sequence[object], column: _C) -> object:
        position = self.columns.get(column)
        if position is None or position >= len(cells):
            return None
        return cells[position]

    def error(self, column: _C, index: int, sheet: str | None, message: str) -> ExcelSourceError:
        """``row 7, column 手机 (E): message`` for the data row ``index`` (0-based)."""
        position = self.columns[column]
        return ExcelSourceError(message, sheet=sheet, row=index + 1,
                                column=self.labels[position], letter=column_letter(position))

    def parse(self, cells: Sequence[object], column: _C, index: int, sheet: str | None,
              parser: Callable[[object], _T]) -> _T:
        try:
            return parser(self.cell(cells, column))
        except ValueError as exc:
            raise self.error(column, index, sheet, str(exc)) from None


def find_header(rows: Iterator[tuple[int, Sequence[object]]], synonyms: Mapping[str, _C], *,
                key: _C, anchor: _C, key_label: str, sheet: str | None = None,
                ignored: _C | None = None) -> HeaderRow[_C] | None:
    """Consume ``rows`` up to the header and return it; ``None`` if none of the first
    ``HEADER_SCAN_ROWS`` rows is one.

    A header has the ``key`` column and one more we know. A row with the ``anchor`` column
    and another known one but no ``key`` is a header missing its key: an error, not a row
    to skip, so a misspelt 账号 is reported rather than a sheet silently ignored.
    """
    for index, cells in rows:
        if index >= HEADER_SCAN_ROWS:
            return None
        found: dict[_C, int] = {}
        labels: dict[int, str] = {}
        unknown: list[str] = []
        for position, value in enumerate(cells):
            meaning = synonyms.get(normalize_header(value))
            label = text_of(value)
            if meaning is None:
                if label:
                    unknown.append(f"{label} ({column_letter(position)})")
                continue
            labels[position] = label
            if meaning == ignored:
                continue
            if meaning in found:
                first = found[meaning]
                raise ExcelSourceError(
                    f"columns {labels[first]} ({column_letter(first)}) and {label} "
                    f"({column_letter(position)}) both give {meaning.value}",
                    sheet=sheet, row=index + 1)
            found[meaning] = position
        if key in found and len(labels) >= 2:
            return HeaderRow(index, found, labels, tuple(unknown))
        if anchor in found and len(labels) >= 2:
            known = ", ".join(labels[p] for p in sorted(labels))
            raise ExcelSourceError(f"missing required column {key_label} (the header row has "
                                   f"{known})", sheet=sheet, row=index + 1)
    return None
