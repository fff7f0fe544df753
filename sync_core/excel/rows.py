"""Data rows → ``WeComUser`` (pure: cells in, users out; ``excel.source`` does the I/O).

``UserRows`` reads one table (a sheet, or the CSV) after another into one directory, so
that an account, mobile or email repeated across sheets is caught like one repeated within
a sheet. Strict (the default): the first bad cell raises ``ExcelSourceError`` and nothing is
kept. ``lenient``: a bad row becomes a ``RowFailure`` (its row, column and reason) and the
other rows are read; the caller must then treat the file as partial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.excel import columns as cols
from sync_core.excel.columns import Column, ExcelSourceError, HeaderRow
from sync_core.excel.departments import DepartmentResolver
from sync_core.wecom.model import WeComUser

# Columns that are one attribute each, parsed the same way everywhere: column → (keyword,
# parser). Status words are combined after parsing (``combine_status``).
_PARSERS: Mapping[Column, tuple[str, Callable[[object], object]]] = {
    Column.USERID: ("userid", cols.parse_userid),
    Column.NAME: ("name", cols.parse_name),
    Column.ALIAS: ("alias", cols.parse_text),
    Column.POSITION: ("position", cols.parse_text),
    Column.GENDER: ("gender", cols.parse_gender),
    Column.MOBILE: ("mobile", cols.parse_mobile),
    Column.TELEPHONE: ("telephone", cols.parse_telephone),
    Column.EMAIL: ("email", cols.parse_email),
    Column.BIZ_MAIL: ("biz_mail", cols.parse_email),
    Column.ADDRESS: ("address", cols.parse_text),
    Column.ENGLISH_NAME: ("english_name", cols.parse_text),
    Column.STATUS: ("status", cols.parse_status),
    Column.ACTIVATION: ("activation", cols.parse_activation),
    Column.DISABLED: ("disabled", cols.parse_disabled),
}
# WeCom keeps all three unique within a corp.
_UNIQUE = {"userid": Column.USERID, "mobile": Column.MOBILE, "email": Column.EMAIL}

_MASKABLE = ("mobile", "email", "biz_mail")

# (keyword, position, column, parser) for each column a table has: built once per table.
_Plan = tuple[tuple[str, int, Column, Callable[[object], object]], ...]

PATHS_NOTE = "rows give departments as name paths and no department tree was given"


@dataclass(frozen=True, slots=True)
class RowFailure:
    """A row that could not be read: ``key`` its account when that cell is valid, else
    ``row N`` (``sheet S row N``); ``error`` names the row, the column and the reason."""

    key: str
    row: int
    sheet: str | None
    error: str


class UserRows:
    """Accumulates users over the tables of one file."""

    def __init__(self, resolver: DepartmentResolver, *, lenient: bool = False) -> None:
        self.resolver = resolver
        self.lenient = lenient
        self.failures: list[RowFailure] = []
        self.users: list[WeComUser] = []
        self.paths: list[tuple[str, tuple[str, ...]]] = []
        self.warnings: list[str] = []
        self.tables_read = 0
        self.left_out = 0
        self._no_department = 0
        self._masked = 0
        # attribute → lower-cased value → (sheet, 0-based row) of its first row; the text
        # of a place is made only for a repeat (10^5 rows: no string per row).
        self._seen: dict[str, dict[str, tuple[str | None, int]]] = {n: {} for n in _UNIQUE}

    @property
    def complete(self) -> bool:
        return self.left_out == 0

    def read_table(self, sheet: str | None, rows: Iterable[tuple[int, Sequence[object]]],
                   start_row: int, end_row: int, *, required: bool) -> bool:
        """Read one table; False (and nothing read) when it has no header and is not
        ``required``. Rows outside ``start_row..end_row`` (0-based, -1 = last) are skipped
        and, when not blank, counted in ``left_out``."""
        remaining = iter(rows)
        header = cols.find_header(remaining, cols.USER_HEADERS, key=Column.USERID,
                                  anchor=Column.NAME, key_label="账号 (or 帐号)", sheet=sheet,
                                  ignored=Column.IGNORED)
        if header is None:
            if required:
                raise ExcelSourceError(f"no header row: none of the first "
                                       f"{cols.HEADER_SCAN_ROWS} rows has 姓名 and 账号 (or 帐号)",
                                       sheet=sheet)
            return False
        self.tables_read += 1
        if header.unknown:
            where = f"sheet {sheet!r}: " if sheet is not None else ""
            self.warnings.append(f"{where}ignored columns not known to the sync: "
                                 f"{', '.join(header.unknown)}")
        plan = tuple((keyword, header.columns[column], column, parser)
                     for column, (keyword, parser) in _PARSERS.items()
                     if column in header.columns)
        account_label = header.labels[header.columns[Column.USERID]]
        for index, cells in remaining:
            if cols.is_blank(cells):
                continue
            if index < start_row or end_row != -1 and index > end_row:
                self.left_out += 1
                continue
            if cols.text_of(header.cell(cells, Column.USERID)) == account_label:
                continue  # the header repeated (a sheet printed in pages)
            try:
                self.users.append(self._user(cells, header, plan, index, sheet))
            except ExcelSourceError as exc:
                if not self.lenient:
                    raise
                self.failures.append(_failure(exc, cells, header, index, sheet))
        return True

    def final_warnings(self) -> tuple[str, ...]:
        notes = list(self.warnings)
        if self.left_out:
            notes.append(f"{self.left_out} data rows outside the row window were left out: "
                         "the snapshot is partial and must not be used to delete anyone")
        if self._masked:
            notes.append(f"{self._masked} masked mobiles or emails (with '*') were read as "
                         "unknown")
        if self._no_department:
            notes.append(f"{self._no_department} rows have an empty department cell: "
                         "their departments are unknown")
        if self.paths:
            notes.append(f"{len(self.paths)} {PATHS_NOTE}: their departments are unknown "
                         "(see department_paths; pass departments= to resolve them)")
        return tuple(notes)

    # -- one row ---------------------------------------------------------------------------

    def _user(self, cells: Sequence[object], header: HeaderRow[Column], plan: _Plan,
              index: int, sheet: str | None) -> WeComUser:
        values: dict[str, Any] = {}
        width = len(cells)
        for name, position, column, parser in plan:
            try:
                values[name] = parser(cells[position] if position < width else None)
            except ValueError as exc:
                raise header.error(column, index, sheet, str(exc)) from None
        for name in _UNIQUE:
            self._unique(name, values.get(name), header, index, sheet)
        for name in _MASKABLE:
            if name in values and values[name] is None:
                self._masked += 1
        try:
            status = cols.combine_status(values.pop("status", None),
                                         values.pop("activation", None),
                                         values.pop("disabled", None))
        except ValueError as exc:
            column = Column.STATUS if Column.STATUS in header.columns else Column.DISABLED
            raise header.error(column, index, sheet, str(exc)) from None
        department = self._departments(cells, header, index, sheet, values["userid"])
        return WeComUser(
            **values,
            status=status,
            department=department,
            main_department=self._main_department(cells, header, index, sheet, department),
            is_leader_in_dept=self._leaders(cells, header, index, sheet, department),
        )

    def _unique(self, name: str, value: str | None, header: HeaderRow[Column], index: int,
                sheet: str | None) -> None:
        if not value:
            return
        seen = self._seen[name]
        key = value.lower()
        first = seen.get(key)
        if first is not None:
            where = f"row {first[1] + 1}"
            if first[0] is not None:
                where = f"sheet {first[0]!r} {where}"
            raise header.error(_UNIQUE[name], index, sheet,
                               f"{value!r} appears again (first at {where})")
        seen[key] = (sheet, index)

    def _resolve(self, entry: str, column: Column, header: HeaderRow[Column], index: int,
                 sheet: str | None) -> int | None:
        try:
            return self.resolver.resolve(entry)
        except ValueError as exc:
            raise header.error(column, index, sheet, str(exc)) from None

    def _departments(self, cells: Sequence[object], header: HeaderRow[Column], index: int,
                     sheet: str | None, userid: str) -> tuple[int, ...] | None:
        if Column.DEPARTMENT not in header.columns:
            return None
        entries = cols.split_list(header.cell(cells, Column.DEPARTMENT))
        if not entries:
            self._no_department += 1
            return None
        ids = [self._resolve(e, Column.DEPARTMENT, header, index, sheet) for e in entries]
        if None in ids:
            self.paths.append((userid, tuple(e if e.isdigit() else cols.normalize_path(e)
                                             for e in entries)))
            return None
        known = tuple(i for i in ids if i is not None)
        if len(set(known)) != len(known):
            raise header.error(Column.DEPARTMENT, index, sheet,
                               f"a department is listed twice in {entries!r}")
        return known

    def _leaders(self, cells: Sequence[object], header: HeaderRow[Column], index: int,
                 sheet: str | None, department: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if Column.LEADER not in header.columns or department is None:
            return None
        flags = header.parse(cells, Column.LEADER, index, sheet, cols.parse_flags)
        if flags and len(flags) != len(department):
            raise header.error(Column.LEADER, index, sheet,
                               f"{len(flags)} leader flags for {len(department)} departments")
        return flags or None

    def _main_department(self, cells: Sequence[object], header: HeaderRow[Column], index: int,
                         sheet: str | None, department: tuple[int, ...] | None) -> int | None:
        entry = cols.text_of(header.cell(cells, Column.MAIN_DEPARTMENT))
        if not entry:
            return None
        main = self._resolve(entry, Column.MAIN_DEPARTMENT, header, index, sheet)
        if main is not None and department is not None and main not in department:
            raise header.error(Column.MAIN_DEPARTMENT, index, sheet,
                               f"main department {entry!r} is not among the user's departments")
        return main


def _failure(exc: ExcelSourceError, cells: Sequence[object], header: HeaderRow[Column],
             index: int, sheet: str | None) -> RowFailure:
    try:
        key = cols.parse_userid(header.cell(cells, Column.USERID))
    except ValueError:
        key = f"row {index + 1}" if sheet is None else f"sheet {sheet} row {index + 1}"
    return RowFailure(key, index + 1, sheet, str(exc))
