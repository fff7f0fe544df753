"""``wecom-sync reconcile`` and ``wecom-sync runs``: runs from the command line.

``reconcile`` exits 0 when the run succeeded, 3 when it is blocked awaiting approval, and 1
when it failed or only partly succeeded; ``--json`` prints the run object of the contract.
SIGINT (Ctrl-C) or SIGTERM stops the run at once: it records what it applied, ends
``partial`` or ``failed`` with the reason, and the command exits 128 + the signal number
(130, 143) after printing it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync_core.directory.operations import Mode

from .cli_table import table
from .params import argument

if TYPE_CHECKING:
    from sync_core.runtime import SyncRuntime

EXIT = {"succeeded": 0, "blocked": 3}
EXCEL_ROWS = 1_048_575  # the last 0-based row of an .xlsx sheet (1,048,576 rows)

def register(sub: Any) -> None:
    rec = sub.add_parser("reconcile", help="compare everything and apply the difference")
    rec.add_argument("--direction", default="upstream", choices=["upstream", "downstream"])
    rec.add_argument("--mode", default=Mode.CREATE_UPDATE.value,
                     choices=[m.value for m in Mode],
                     help="create_update (default, never deletes), delete_only or full")
    rec.add_argument("--source", choices=["api", "excel"],
                     help="api (default) or excel (needs --file)")
    rec.add_argument("--file", type=Path, help="WeCom's exported address book (.xlsx/.csv)")
    rec.add_argument("--sheet", help="sheet index or name (default: all)")
    rec.add_argument("--start-row", type=argument(0, EXCEL_ROWS, "start-row"), default=0,
                     help="first row, 0-based")
    rec.add_argument("--end-row", type=argument(-1, EXCEL_ROWS, "end-row"), default=-1,
                     help="last row, 0-based; -1 = last")
    rec.add_argument("--keep-top-department", action="store_true",
                     help="the paths' top segment (the company) becomes a department "
                          "instead of the organization root")
    rec.add_argument("--departments-file", type=Path,
                     help="WeCom's department CSV (部门名称,部门ID,父部门ID,排序): real ids")
    rec.add_argument("--dry-run", action="store_true", help="plan and report, apply nothing")
    rec.add_argument("--json", action="store_true", help="print the run as JSON")
    rec.set_defaults(handler=reconcile)

    show = sub.add_parser("runs", help="list reconcile runs, or show one with its items")
    show.add_argument("id", nargs="?", type=argument(what="run id"), help="a run id")
    show.add_argument("--limit", type=argument(1, 500, "limit"), default=20)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=runs_command)


def reconcile(args: argparse.Namespace) -> int:
    from sync_core.engine.reconciler import ExcelInput, RequestError, RunRequest
    from sync_core.excel.snapshot import check_excel
    from sync_core.store import runs

    from .cli import with_runtime

    source = args.source or ("excel" if args.file else "api")
    excel = None
    if args.file is not None:
        try:
            data = args.file.read_bytes()
            tree = (args.departments_file.read_bytes() if args.departments_file is not None
                    else None)
        except OSError as exc:
            return _fail(f"cannot read {exc.filename}: {exc.strerror}")
        sheet = int(args.sheet) if args.sheet and args.sheet.isdigit() else args.sheet
        excel = ExcelInput(data, args.file.name, sheet, args.start_row, args.end_row,
                           keep_top_department=args.keep_top_department, departments=tree)
        try:
            check_excel(excel)
        except RequestError as exc:
            return _fail(f"{args.file}: {exc}" if args.file.name not in str(exc) else str(exc))
    request = RunRequest(direction=args.direction, mode=Mode(args.mode), source=source,
                         dry_run=args.dry_run, trigger="cli", excel=excel)
    stopped: list[signal.Signals] = []

    async def job(runtime: SyncRuntime) -> dict[str, Any]:
        bar = _Bar(enabled=sys.stderr.isatty() and not args.json)
        # In the background, so that a signal interrupts the run (see on_stop).
        run_id = await runtime.reconciler.start(request, progress=bar)
        await runtime.reconciler.wait()
        bar.close()
        with runtime.reconciler.engine.connect() as conn:
            run = runs.get(conn, run_id)
            assert run is not None
            return runs.as_json(run, runs.items(conn, run_id))

    def on_stop(runtime: SyncRuntime, sig: signal.Signals) -> None:
        stopped.append(sig)
        runtime.reconciler.interrupt(f"interrupted by {sig.name}")

    try:
        run = with_runtime(job, on_stop, need_wecom=source != "excel")
    except RequestError as exc:
        return _fail(str(exc))
    except runs.RunConflict as exc:
        return _fail(f"{exc}; wait for it or see: wecom-sync runs {exc.run_id}")
    if args.json:
        print(json.dumps(run, ensure_ascii=False, indent=2))
    else:
        _print_run(run)
    if stopped:  # as a shell reports a process a signal ended
        _fail(f"interrupted by {stopped[0].name}: run {run['id']} ended {run['status']}")
        return 128 + stopped[0]
    return EXIT.get(run["status"], 1)


def runs_command(args: argparse.Namespace) -> int:
    from sync_core.store import migrate, runs
    from sync_core.store.db import make_engine

    from .cli import settings_from_env

    settings = settings_from_env()
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            if args.id is None:
                listed = [runs.as_json(r) for r in runs.recent(conn, limit=args.limit)]
                print(json.dumps({"runs": listed}, ensure_ascii=False, indent=2)
                      if args.json else _table(listed))
                return 0
            run = runs.get(conn, args.id)
            if run is None:
                return _fail(f"no run {args.id}")
            shown = runs.as_json(run, runs.items(conn, args.id))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        _print_run(shown)
    return 0


# -- output -------------------------------------------------------------------------------


class _Bar:
    """A one-line progress bar on stderr, only for a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r  applying [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _print_run(run: dict[str, Any]) -> None:
    print(f"run {run['id']}: {run['direction']} {run['mode']} from {run['source']}"
          f"{' (dry run)' if run['dry_run'] else ''} → {run['status']}")
    if run.get("error"):
        print(f"  {run['error']}")
    for note in run.get("notes") or ():
        print(f"  note: {note}")
    decision = run.get("decision")
    if decision:
        print(f"  {decision['decision']} by {decision['by']} at {decision['at']}")
    counters = run["counters"]
    print("  " + "  ".join(f"{k} {counters[k]}" for k in counters))
    items = [i for i in run.get("items") or () if i["action"] != "unchanged"]
    if items:
        rows = [[i["kind"], i["key"], i["action"], i["status"],
                 i["error"] or ", ".join(str(c[0]) for c in i["changes"])]
                for i in items[:200]]
        print()
        print(table(["kind", "key", "action", "status", "detail"], rows, indent="  "))
        if len(items) > 200:
            print(f"  … and {len(items) - 200} more (use --json)")


def _table(listed: list[dict[str, Any]]) -> str:
    rows = [[r["id"], r["direction"], r["mode"], r["source"],
             r["status"] + (" (dry run)" if r["dry_run"] else ""),
             r["counters"]["created"], r["counters"]["updated"], r["counters"]["deleted"],
             r["counters"]["failed"], r["started_at"] or "-"] for r in listed]
    return table(["id", "direction", "mode", "source", "status", "created", "updated",
                  "deleted", "failed", "started"], rows, right=frozenset({0, 5, 6, 7, 8}))


def _fail(message: str) -> int:
    print(f"wecom-sync: {message}", file=sys.stderr)
    return 1
