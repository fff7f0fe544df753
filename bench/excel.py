"""Read and plan a 100,000-row address-book export (issue 14), beside bare reader passes.

    python -m bench.excel [--users 100000] [--departments 3000] [--output bench/RESULTS.md]

The file is the WeCom simulator's exporter's 2026 layout (``ExcelLayout.export_2026``) of a
generated directory. Each measurement runs in its own fresh process, so that its peak RSS
(``ru_maxrss``) is its own:

- ``openpyxl`` — a bare ``load_workbook(read_only=True, data_only=True)`` pass over every
  row's values, nothing kept: the floor for a pure-Python read;
- ``calamine`` — the same pass with python-calamine (Rust), when it is installed;
- ``product`` — what a reconcile run does with the file before it calls Authing:
  ``read_upload`` (the lenient read, with whichever reader the product chose), the
  department tree from the paths (``build_tree``) and the plan for an empty Authing
  (``plan_full``, every user and department a create);
- ``product-openpyxl`` — the same with python-calamine hidden, as when it is not
  installed.

The section between ``<!-- excel:start -->`` and ``<!-- excel:end -->`` of ``--output``
is rewritten; other sections are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START, END = "<!-- excel:start -->", "<!-- excel:end -->"


def make_file(path: Path, users: int, departments: int) -> dict[str, Any]:
    from simulators.generate import generate_directory, paused_gc
    from simulators.wecom.export import ExcelLayout, export_xlsx
    from simulators.wecom.state import Directory

    started = time.perf_counter()
    generated = generate_directory(users=users, departments=departments, seed=14,
                                   max_depth=6, corp_name="示例科技")
    directory = Directory("示例科技")
    with paused_gc():
        directory.load(generated.departments, generated.users)
    data = export_xlsx(directory, ExcelLayout.export_2026())
    path.write_bytes(data)
    return {"bytes": len(data), "seconds": time.perf_counter() - started}


def measure(kind: str, path: Path) -> dict[str, Any]:
    """One measurement, in this process (called in a child)."""
    data = path.read_bytes()
    started = time.perf_counter()
    cpu = time.process_time()
    result: dict[str, Any] = {}
    if kind == "openpyxl":
        import io

        from openpyxl import load_workbook
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        rows = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
        book.close()
        result["rows"] = rows
    elif kind == "calamine":
        import io

        from python_calamine import CalamineWorkbook
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows = sum(1 for _ in book.get_sheet_by_index(0).iter_rows())
        book.close()
        result["rows"] = rows
    elif kind in ("product", "product-openpyxl"):
        from sync_core.excel import source as excel_source
        from sync_core.excel.source import read_upload, reader_name
        if kind == "product-openpyxl":  # the product's own read, without calamine
            excel_source.CalamineWorkbook = None
        from sync_core.authing.planner import Mode, plan_full
        from sync_core.binding import Binding
        from sync_core.excel.tree import build_tree

        book = read_upload(data, path.name)
        read_at = time.perf_counter()
        result.update(rows=len(book.users), failures=len(book.failures))
        tree = build_tree(book.users, dict(book.department_paths), [], [], Binding())
        del book  # as the reconciler lets it go
        ops = plan_full(tree.users, tree.departments, [], [], Binding(), Mode.FULL)
        result.update(departments=len(tree.departments) - 1, operations=len(ops),
                      read_seconds=read_at - started, reader=reader_name())
    else:
        raise SystemExit(f"unknown measurement {kind}")
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _peak_rss_mib() -> float:
    """This process's high-water RSS since its exec (``VmHWM``; ``ru_maxrss`` would carry
    the parent's, as it survives exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, path: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.excel", "--measure", kind,
                          "--file", str(path), *extra], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _calamine() -> bool:
    try:
        import python_calamine  # noqa: F401
    except ImportError:
        return False
    return True


def report(args: argparse.Namespace, made: dict[str, Any], results: dict[str, dict[str, Any]],
           load_before: str, load_after: str) -> str:
    bare = results["openpyxl"]["seconds"]
    bare_cpu = results["openpyxl"]["cpu_seconds"]
    product = results["product"]
    lines = [
        START, "## Excel: read and plan a 100,000-row export", "",
        "Generated by `bench/excel.py`, which rewrites only this section; see its docstring "
        "for what each row measures.", "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Linux {platform.release()}; shared with other work: load average {load_before} "
        f"before, {load_after} after",
        f"- Python {platform.python_version()}",
        f"- File: the WeCom simulator's 2026-layout export of {args.users:,} users in "
        f"{args.departments:,} departments, {made['bytes'] / 2**20:.1f} MiB", "",
        "### Command", "", "    python -m bench.excel", "",
        "### Results", "",
        "| measurement | wall s | CPU s | peak RSS MiB | × bare openpyxl (wall) | × (CPU) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for kind, label in (("openpyxl", "bare openpyxl read-only pass"),
                        ("calamine", "bare python-calamine pass"),
                        ("product", f"product: read ({product.get('reader')}), tree, plan"),
                        ("product-openpyxl", "product: read (openpyxl), tree, plan")):
        if kind not in results:
            continue
        r = results[kind]
        lines.append(f"| {label} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['seconds'] / bare:.2f} | "
                     f"{r['cpu_seconds'] / bare_cpu:.2f} |")
    lines += [
        "", f"The product read {product['rows']:,} rows ({product['failures']} failed) in "
        f"{product['read_seconds']:.2f} s, built {product['departments']:,} departments and "
        f"planned {product['operations']:,} operations. Targets: ≤ 1.5 × the bare openpyxl "
        f"read ({1.5 * bare:.2f} s here) and ≤ 512 MiB peak RSS. On a loaded machine the "
        "wall times stretch with the load; the CPU seconds compare the work itself.", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=3_000)
    parser.add_argument("--output", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure == "make":
        print(json.dumps(make_file(args.file, args.users, args.departments)))
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.file)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "成员列表.xlsx"
        made = _child("make", path, "--users", str(args.users), "--departments",
                      str(args.departments))  # its memory is not the measurements' parent's
        print(f"export: {made['bytes'] / 2**20:.1f} MiB in {made['seconds']:.1f} s",
              file=sys.stderr)
        load_before = _load()
        results: dict[str, dict[str, Any]] = {}
        kinds = ("openpyxl", "calamine", "product", "product-openpyxl") if _calamine() else (
            "openpyxl", "product")
        for kind in kinds:
            results[kind] = _child(kind, path)
            print(kind, results[kind], file=sys.stderr)
        load_after = _load()
    section = report(args, made, results, load_before, load_after)
    text = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    text = (pattern.sub(lambda _: section, text) if START in text
            else text.rstrip() + "\n\n" + section + "\n")
    args.output.write_text(text, encoding="utf-8")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
