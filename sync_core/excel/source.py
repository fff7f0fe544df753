"""The address book from a file: WeCom's exported ``.xlsx``, or the ``.csv`` templates.

Parsing is all-or-nothing by default: ``read_address_book`` returns a whole ``AddressBook``
or raises ``ExcelSourceError`` naming the place (``row 7, column 手机 (E): '1380000' is not
a valid mobile``). With ``lenient=True`` only the file's shape (type, sheet, header) can
refuse it: a bad row lands in ``AddressBook.failures`` and the rest is read. Rows and
columns in messages are counted as a spreadsheet shows them
(from 1, letters for columns); ``ExcelOptions`` rows are 0-based, as in Authing's Excel node.

What a cell means follows the model's convention: a column that is absent leaves the
attribute unknown (``None``); an empty cell in a present column is a known empty value.

Departments (see ``excel.departments``): ids are WeCom's and never invented. Without a
department tree, cells written as paths leave ``WeComUser.department`` unknown and are
reported in ``AddressBook.department_paths`` (``excel.tree`` builds the tree from them when
the file stands alone); with a tree, every path must resolve.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, TypeVar

from openpyxl import load_workbook

try:  # Rust's calamine: the same cells several times faster than openpyxl (bench/RESULTS.md)
    from python_calamine import CalamineWorkbook
except ImportError:  # pragma: no cover - an optional speed-up; openpyxl reads the same
    CalamineWorkbook = None  # type: ignore[misc, assignment]

from sync_core.excel import columns as cols
from sync_core.excel.columns import DepartmentColumn, ExcelSourceError, HeaderRow
from sync_core.excel.departments import DepartmentResolver
from sync_core.excel.merge import merge_sources
from sync_core.excel.rows import RowFailure, UserRows
from sync_core.wecom.model import WeComDepartment, WeComUser

_T = TypeVar("_T")

__all__ = ["ExcelOptions", "ExcelSourceError", "AddressBook", "RowFailure", "merge_sources",
           "read_address_book", "read_department_csv", "read_upload", "reader_name"]


@dataclass(frozen=True, slots=True)
class ExcelOptions:
    """Which sheet (0-based index or name; ``None``/``""`` = every sheet with an address
    book) and which rows (0-based, inclusive; ``end_row=-1`` = to the last). The header
    row is looked for from the top of each sheet whatever the window; the window selects
    the data rows."""

    sheet: int | str | None = None
    start_row: int = 0
    end_row: int = -1

    def __post_init__(self) -> None:
        if self.start_row < 0:
            raise ValueError(f"start_row must be >= 0, got {self.start_row}")
        if self.end_row != -1 and self.end_row < self.start_row:
            raise ValueError(f"end_row {self.end_row} is before start_row {self.start_row}")
        if isinstance(self.sheet, int) and (isinstance(self.sheet, bool) or self.sheet < 0):
            raise ValueError(f"sheet index must be >= 0, got {self.sheet!r}")


@dataclass(frozen=True, slots=True)
class AddressBook:
    """What the file says.

    ``departments`` is the tree the cells were resolved against (passed in), or ``None``
    when no tree was given: the file alone does not know WeCom's department ids, so a
    reconciler must not delete departments on its word. ``department_paths`` lists, per
    userid, the department paths of rows left with ``department=None`` for want of a tree.
    ``complete`` is False when the row window left out data rows: the snapshot then must
    not be used to delete anyone. ``warnings`` are things an operator should see.
    ``failures`` are the rows a lenient read could not take (also: delete no one).
    """

    users: tuple[WeComUser, ...]
    departments: tuple[WeComDepartment, ...] | None
    warnings: tuple[str, ...] = ()
    department_paths: tuple[tuple[str, tuple[str, ...]], ...] = ()
    complete: bool = True
    failures: tuple[RowFailure, ...] = ()


def read_address_book(data: bytes, filename: str, options: ExcelOptions = ExcelOptions(), *,
                      departments: Iterable[WeComDepartment] | None = None,
                      lenient: bool = False) -> AddressBook:
    """Parse an exported address book (``.xlsx``) or a user CSV template (``.csv``).

    ``departments`` (from the API, or ``read_department_csv``) lets department paths be
    matched to WeCom ids; every path must then match. Raises ``ExcelSourceError``.
    """
    kind = _file_kind(data, filename)
    rows = UserRows(DepartmentResolver(departments), lenient=lenient)
    if kind == "csv":
        if options.sheet not in (None, "", 0):
            raise ExcelSourceError(f"{filename}: a CSV file has one sheet, not {options.sheet!r}")
        table = _csv_rows(data, filename)
        try:
            rows.read_table(None, table, options.start_row, options.end_row, required=True)
        except ExcelSourceError as exc:
            if rows.tables_read or _find_department_header(table) is None:
                raise
            raise ExcelSourceError(
                f"{filename}: this is the department CSV (部门名称,部门ID,...); read it with "
                "read_department_csv and pass departments=") from exc
    else:
        _read_workbook(data, filename, options, rows)
    return AddressBook(
        users=tuple(rows.users),
        departments=rows.resolver.tree,
        warnings=rows.final_warnings(),
        department_paths=tuple(rows.paths),
        complete=rows.complete,
        failures=tuple(rows.failures),
    )


def read_upload(data: bytes, filename: str, options: ExcelOptions = ExcelOptions(), *,
                departments_csv: bytes | None = None) -> AddressBook:
    """What a reconcile run reads from an upload: the address book, leniently (bad rows in
    ``failures``), with its paths resolved against the department CSV when one is given.
    Raises ``ExcelSourceError`` only for a file of the wrong shape (either file)."""
    tree = None
    if departments_csv is not None:
        try:
            tree = read_department_csv(departments_csv)
        except ExcelSourceError as exc:
            raise ExcelSourceError(f"department CSV: {exc}") from exc
    return read_address_book(data, filename, options, departments=tree, lenient=True)


def read_department_csv(data: bytes) -> tuple[WeComDepartment, ...]:
    """Parse the department template ``部门名称,部门ID,父部门ID,排序`` (parents first or
    not). Ids must be unique and every parent present (the root's parent is 0 or empty).
    Raises ``ExcelSourceError``."""
    table = _csv_rows(data, "department CSV")
    remaining = iter(table)
    header = _find_department_header(remaining)
    if header is None:
        raise ExcelSourceError(f"no header row: none of the first {cols.HEADER_SCAN_ROWS} "
                               "rows has 部门名称 and 部门ID")
    if DepartmentColumn.PARENT not in header.columns:
        raise ExcelSourceError("missing required column 父部门ID", row=header.row + 1)
    if DepartmentColumn.NAME not in header.columns:
        raise ExcelSourceError("missing required column 部门名称", row=header.row + 1)
    found: dict[int, tuple[WeComDepartment, int]] = {}
    for index, cells in remaining:
        if cols.is_blank(cells):
            continue

        def get(column: DepartmentColumn, parser: Callable[[object], _T],
                cells: Sequence[object] = cells, index: int = index) -> _T:
            return header.parse(cells, column, index, None, parser)

        dept = WeComDepartment(
            id=get(DepartmentColumn.ID, _department_id),
            name=get(DepartmentColumn.NAME, cols.parse_name),
            parent_id=get(DepartmentColumn.PARENT, _parent_id),
            order=(get(DepartmentColumn.ORDER, _order)
                   if DepartmentColumn.ORDER in header.columns else None),
        )
        if dept.id in found:
            raise header.error(DepartmentColumn.ID, index, None, f"department {dept.id} appears "
                               f"again (first at row {found[dept.id][1] + 1})")
        found[dept.id] = (dept, index)
    for dept, index in found.values():
        problem = _parent_problem(dept, found)
        if problem:
            raise header.error(DepartmentColumn.PARENT, index, None, problem)
    return tuple(dept for dept, _ in found.values())


def _parent_problem(dept: WeComDepartment,
                    found: dict[int, tuple[WeComDepartment, int]]) -> str | None:
    """Why ``dept`` does not hang from a top department (parent 0), if it does not."""
    if dept.parent_id and dept.parent_id not in found:
        return f"parent department {dept.parent_id} is not in the file"
    seen = {dept.id}
    parent = dept.parent_id
    while parent and parent in found:  # a missing ancestor is reported on its own row
        if parent in seen:
            return f"department {dept.id} is its own ancestor (the parents loop)"
        seen.add(parent)
        parent = found[parent][0].parent_id
    return None


def _find_department_header(rows: Iterable[tuple[int, Sequence[object]]]
                            ) -> HeaderRow[DepartmentColumn] | None:
    return cols.find_header(iter(rows), cols.DEPARTMENT_HEADERS, key=DepartmentColumn.ID,
                            anchor=DepartmentColumn.NAME, key_label="部门ID")


def _department_id(value: object) -> int:
    return cols.parse_int(value, "a department id", minimum=1)


def _parent_id(value: object) -> int:
    return cols.parse_int(cols.text_of(value) or "0", "a parent department id")


def _order(value: object) -> int:
    return cols.parse_int(cols.text_of(value) or "0", "an order")


# -- file types ----------------------------------------------------------------------------

_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


def _file_kind(data: bytes, filename: str) -> str:
    """``"xlsx"`` or ``"csv"``, by extension, checked against the content's magic bytes."""
    if not data:
        raise ExcelSourceError(f"{filename}: the file is empty")
    suffix = PurePath(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        if data.startswith(_ZIP):
            return "xlsx"
        if data.startswith(_OLE):
            raise ExcelSourceError(f"{filename}: not an .xlsx package: a legacy .xls workbook or "
                                   "a password-protected one; save it as .xlsx without a password")
        raise ExcelSourceError(f"{filename}: not an .xlsx file (no zip signature)")
    if suffix == ".csv":
        if data.startswith((_ZIP, _OLE)):
            raise ExcelSourceError(f"{filename}: named .csv but holds a workbook; "
                                   "save it as CSV, or upload it as .xlsx")
        return "csv"
    if suffix == ".xls":
        raise ExcelSourceError(f"{filename}: legacy .xls workbooks are not supported; "
                               "save it as .xlsx or .csv")
    raise ExcelSourceError(f"{filename}: unsupported file type {suffix or '(no extension)'!r}; "
                           "expected .xlsx or .csv")


def _decode(data: bytes, filename: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else GB18030 with or without its
    BOM (Chinese Windows Excel's "CSV" export)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExcelSourceError(f"{filename}: unreadable UTF-16 text: {exc}") from exc
    if b"\x00" in data:
        raise ExcelSourceError(f"{filename}: not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:  # GB18030's own byte-order mark (84 31 95 33) decodes to U+FEFF
        return data.decode("gb18030").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ExcelSourceError(f"{filename}: neither UTF-8 nor GB18030 text: {exc}") from exc


def _csv_rows(data: bytes, filename: str) -> list[tuple[int, list[str]]]:
    text = _decode(data, filename)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        return list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)))
    except csv.Error as exc:
        raise ExcelSourceError(f"{filename}: malformed CSV: {exc}") from exc


def reader_name() -> str:
    """The library that reads ``.xlsx`` files here."""
    return "openpyxl" if CalamineWorkbook is None else "python-calamine"


def _read_workbook(data: bytes, filename: str, options: ExcelOptions, rows: UserRows, *,
                   reader: str | None = None) -> None:
    """Every chosen sheet into ``rows``, with python-calamine when installed, else
    openpyxl (``reader`` forces one). Both give the cells as Python values; calamine
    writes an empty cell as ``""``, which reads as blank all the same."""
    use_calamine = (reader or reader_name()) == "python-calamine"
    try:
        book: Any = (CalamineWorkbook.from_filelike(io.BytesIO(data)) if use_calamine
                     else load_workbook(io.BytesIO(data), read_only=True, data_only=True))
        titles = list(book.sheet_names) if use_calamine else [s.title for s in book.worksheets]
    except Exception as exc:  # noqa: BLE001 - any failure of the parser: the file is unreadable
        raise ExcelSourceError(f"{filename}: unreadable workbook: {type(exc).__name__}: {exc}"
                               ) from exc
    try:
        chosen = _choose_sheets(titles, options.sheet, filename)
        for index in chosen:
            label = titles[index] if len(titles) > 1 else None
            cells = (_calamine_rows(book, index, filename) if use_calamine
                     else book.worksheets[index].iter_rows(values_only=True))
            table = _sheet_rows(cells, filename)
            read = rows.read_table(label, table, options.start_row, options.end_row,
                                   required=len(chosen) == 1)
            if not read:
                rows.warnings.append(f"sheet {label!r} skipped: no address-book header row")
    finally:
        book.close()
    if not rows.tables_read:
        raise ExcelSourceError(f"{filename}: no sheet has an address book (a header row "
                               "with 姓名 and 账号 or 帐号)")


def _choose_sheets(titles: list[str], wanted: int | str | None, filename: str) -> list[int]:
    if wanted is None or wanted == "":
        return list(range(len(titles)))
    if isinstance(wanted, str):
        if wanted in titles:
            return [titles.index(wanted)]
        stripped = [t.strip() for t in titles]
        if wanted.strip() in stripped:
            return [stripped.index(wanted.strip())]
        if not wanted.strip().isdigit():
            raise ExcelSourceError(f"{filename}: no sheet named {wanted!r} "
                                   f"(sheets: {', '.join(titles)})")
        wanted = int(wanted)
    if wanted >= len(titles):
        raise ExcelSourceError(f"{filename}: no sheet {wanted} (0-based; the workbook has "
                               f"{len(titles)}: {', '.join(titles)})")
    return [wanted]


def _calamine_rows(book: Any, index: int, filename: str) -> Iterator[Sequence[object]]:
    """calamine starts each row at the sheet's first used column: put back the columns
    before it, so that letters in messages are the spreadsheet's."""
    try:
        sheet = book.get_sheet_by_index(index)
    except Exception as exc:  # noqa: BLE001 - any failure of the parser
        raise ExcelSourceError(f"{filename}: unreadable sheet {index}: "
                               f"{type(exc).__name__}: {exc}") from exc
    left = (None,) * (sheet.start[1] if sheet.start else 0)
    for row in sheet.iter_rows():
        yield (*left, *row) if left else row


def _sheet_rows(rows: Iterator[Sequence[object]], filename: str
                ) -> Iterator[tuple[int, Sequence[object]]]:
    """The readers read lazily, so a damaged sheet fails mid-way: translated here."""
    index = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - any failure of the parser
            raise ExcelSourceError(f"{filename}: unreadable workbook near row {index + 1}: "
                                   f"{type(exc).__name__}: {exc}") from exc
        yield index, cells
        index += 1
