"""The exported address book as the source snapshot of a reconcile run.

The API gives structure where it may be read; the file gives attributes. With no readable
API the file stands alone, and whatever it cannot establish (the department tree, rows
outside the chosen window) rules out deletes.
"""

from __future__ import annotations

import asyncio
import logging

from sync_core.engine.ports import SourceReader, SourceSnapshot
from sync_core.engine.reconciler import ExcelInput
from sync_core.errors import SyncError
from sync_core.excel.source import ExcelOptions, merge_sources, read_address_book

log = logging.getLogger(__name__)


async def read_excel(structure_source: SourceReader, excel: ExcelInput) -> SourceSnapshot:
    structure: SourceSnapshot | None = None
    try:
        structure = await structure_source.snapshot()
    except SyncError as exc:  # incl. refused reads (60020, 48002): the file's purpose
        log.info("WeCom API not readable, using the Excel file alone: %s", exc)
    options = ExcelOptions(sheet=excel.sheet, start_row=excel.start_row,
                           end_row=excel.end_row)
    book = await asyncio.to_thread(read_address_book, excel.data, excel.filename, options)
    notes = tuple(book.warnings)
    if structure is not None and structure.complete:
        users = merge_sources(structure.users, structure.departments, book.users)
        return SourceSnapshot(tuple(users), structure.departments, (),
                              (*structure.notes, *notes))
    problems = [] if structure is None else list(structure.problems)
    if book.departments is None:
        problems.append("the file names departments by path and no department tree "
                        "could be read: memberships are left as they are")
    if not book.complete:
        problems.append("the chosen sheet or rows leave out part of the file")
    return SourceSnapshot(book.users, book.departments or (), tuple(problems), notes)
