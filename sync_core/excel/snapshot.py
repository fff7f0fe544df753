"""The exported address book as the source snapshot of a reconcile run.

The API gives structure where it may be read; the file gives attributes. With no readable
API the file stands alone: its department paths become the tree (``excel.tree``, beside
the target's departments, so the snapshot is finished once the target is read), or the
department CSV gives WeCom's ids. Whatever it cannot establish (rows outside the chosen
window, rows that failed) rules out deletes; a failed row is a failed item of the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from sync_core.binding import Binding
from sync_core.engine.ports import SourceReader, SourceSnapshot, TargetSnapshot
from sync_core.engine.reconciler import ExcelInput, RequestError
from sync_core.errors import SyncError
from sync_core.excel.rows import PATHS_NOTE
from sync_core.excel.source import AddressBook, ExcelOptions, merge_sources, read_upload
from sync_core.excel.tree import build_tree

log = logging.getLogger(__name__)


def check_excel(excel: ExcelInput) -> None:
    """Refuse a file of the wrong shape (type, sheet, header, options) before a run
    exists, naming the place; bad rows are not refused here: they fail their own items.
    Raises ``RequestError``."""
    try:
        read_upload(excel.data, excel.filename, ExcelOptions(
            sheet=excel.sheet, start_row=excel.start_row, end_row=excel.end_row),
            departments_csv=excel.departments)
    except ValueError as exc:  # ExcelSourceError, or bad options (end_row < start_row)
        raise RequestError(str(exc)) from None


async def read_excel(structure_source: SourceReader, excel: ExcelInput) -> SourceSnapshot:
    structure: SourceSnapshot | None = None
    try:
        structure = await structure_source.snapshot()
    except SyncError as exc:  # incl. refused reads (60020, 48002): the file's purpose
        log.info("WeCom API not readable, using the Excel file alone: %s", exc)
    options = ExcelOptions(sheet=excel.sheet, start_row=excel.start_row,
                           end_row=excel.end_row)
    book = await asyncio.to_thread(lambda: read_upload(
        excel.data, excel.filename, options, departments_csv=excel.departments))
    notes = tuple(w for w in book.warnings if PATHS_NOTE not in w)
    problems = [] if structure is None else list(structure.problems)
    if not book.complete:
        problems.append("the chosen sheet or rows leave out part of the file")
    if book.failures:
        problems.append(f"{len(book.failures)} rows of the file failed")
    failed = tuple((f.key, f.error) for f in book.failures)
    if structure is not None and structure.complete:
        users = merge_sources(structure.users, structure.departments, book.users)
        return SourceSnapshot(tuple(users), structure.departments, tuple(problems),
                              (*structure.notes, *notes), failed=failed)
    if book.departments is not None:
        return SourceSnapshot(book.users, book.departments, tuple(problems), notes,
                              failed=failed)
    # The file alone, naming departments by path: the tree is built beside the target's.
    unfinished = SourceSnapshot(book.users, (), tuple(problems), notes, failed=failed)
    return replace(unfinished, finish=_tree_of(unfinished, book,
                                               keep_top=excel.keep_top_department))


def _tree_of(unfinished: SourceSnapshot, book: AddressBook, *, keep_top: bool
             ) -> Callable[[TargetSnapshot, Binding], SourceSnapshot]:
    paths = dict(book.department_paths)

    def finish(target: TargetSnapshot, binding: Binding) -> SourceSnapshot:
        tree = build_tree(book.users, paths, target.departments, target.users, binding,
                          keep_top=keep_top)
        return SourceSnapshot(tree.users, tree.departments, unfinished.problems,
                              (*unfinished.notes, *tree.notes), failed=unfinished.failed)

    return finish
