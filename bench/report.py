"""Numbers and Markdown for the ingest benchmark: merge load generator output, judge the
targets, write ``bench/RESULTS.md``. Pure functions, apart from reading /proc for the
machine description."""

from __future__ import annotations

import argparse
import math
import os
import platform
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# The targets.
MIN_STORED_RATE = 1000.0  # events/s accepted by a storing server
MAX_P99_AT_RATE_MS = 50.0  # p99 at the fixed offered rate
MIN_RATIO = 0.5  # stored / baseline max throughput
START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"
# Loopback softirq alone is ~30% of a core at full load; beyond this, other work was running.
NOISE_LIMIT = 60.0  # % of one core used by "other processes" in a phase


@dataclass
class PhaseResult:
    """One phase, all load generators merged. Latencies in milliseconds."""

    offered_rate: float  # 0 for the closed loop
    sent: int
    accepted: int
    statuses: dict[str, int]
    elapsed: float
    p50: float
    p99: float
    max: float
    server_cpu: float  # CPU seconds the server used during the phase
    client_cpu: float  # CPU seconds all load generators used during the phase
    machine_cpu: float  # CPU seconds the whole machine was busy during the phase

    @property
    def errors(self) -> int:
        return self.sent - self.accepted

    @property
    def other_cpu(self) -> float:
        """Busy time of processes that are not part of the benchmark (noise)."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def server_ms_per_event(self) -> float:
        """Server CPU per accepted event: the cost that bounds a CPU-bound server."""
        return 1000.0 * self.server_cpu / self.accepted if self.accepted else math.nan

    def cpu_share(self, seconds: float) -> float:
        """CPU seconds as a percentage of one core over the phase."""
        return 100.0 * seconds / self.elapsed if self.elapsed > 0 else math.nan


@dataclass
class TargetResult:
    kind: str
    warmup: PhaseResult | None = None
    peak: PhaseResult | None = None
    fixed: PhaseResult | None = None
    inbox_rows: int | None = None
    busy_before: float | None = None  # busy fraction of all cores just before the target
    failure: str | None = None

    @property
    def accepted_total(self) -> int:
        return sum(p.accepted for p in (self.warmup, self.peak, self.fixed) if p is not None)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there are no samples."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def merge(outputs: list[dict[str, Any]], offered_rate: float, server_cpu: float,
          machine_cpu: float) -> PhaseResult:
    """Combine per-process loadgen JSON into one phase result."""
    latencies = sorted(x * 1000.0 for out in outputs for x in out["latencies"])
    statuses: Counter[str] = Counter()
    for out in outputs:
        statuses.update(out["statuses"])
    return PhaseResult(
        offered_rate=offered_rate,
        sent=sum(out["sent"] for out in outputs),
        accepted=sum(out["accepted"] for out in outputs),
        statuses=dict(statuses),
        elapsed=max((out["elapsed"] for out in outputs), default=0.0),
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        max=latencies[-1] if latencies else math.nan,
        server_cpu=server_cpu,
        client_cpu=sum(out["cpu_seconds"] for out in outputs),
        machine_cpu=machine_cpu,
    )


def describe(p: PhaseResult) -> str:
    errors = "" if not p.errors else f" errors={p.errors} {p.statuses}"
    return (f"{p.accepted} accepted in {p.elapsed:.1f} s = {p.rate:.0f}/s, "
            f"p50 {p.p50:.1f} ms, p99 {p.p99:.1f} ms, server CPU "
            f"{p.cpu_share(p.server_cpu):.0f}% ({p.server_ms_per_event:.2f} ms/event), "
            f"loadgen CPU "
            f"{p.cpu_share(p.client_cpu):.0f}%, other processes "
            f"{p.cpu_share(p.other_cpu):.0f}%{errors}")


# -- verdicts ----------------------------------------------------------------------------


def ratio(result: TargetResult, baseline: TargetResult | None) -> float | None:
    if baseline is None or baseline.peak is None or result.peak is None:
        return None
    return result.peak.rate / baseline.peak.rate if baseline.peak.rate else None


def verdicts(results: list[TargetResult]) -> list[tuple[str, str, bool]]:
    """(target, what was checked and measured, met?) for every storing target."""
    baseline = next((r for r in results if r.kind == "baseline"), None)
    out: list[tuple[str, str, bool]] = []
    for r in results:
        if r.kind == "baseline":
            continue
        if r.failure or r.peak is None or r.fixed is None:
            out.append((r.kind, f"run failed: {r.failure}", False))
            continue
        out.append((r.kind, f"≥ {MIN_STORED_RATE:.0f} stored events/s: measured "
                            f"{r.peak.rate:.0f}/s", r.peak.rate >= MIN_STORED_RATE))
        out.append((r.kind, f"p99 < {MAX_P99_AT_RATE_MS:.0f} ms at {r.fixed.offered_rate:.0f}"
                            f"/s offered: measured {r.fixed.p99:.1f} ms",
                    r.fixed.p99 < MAX_P99_AT_RATE_MS and r.fixed.errors == 0))
        value = ratio(r, baseline)
        if value is None:
            out.append((r.kind, "stored/baseline ratio: no baseline in this run", False))
        else:
            out.append((r.kind, f"stored/baseline ≥ {MIN_RATIO}: measured {value:.2f}",
                        value >= MIN_RATIO))
        rows_ok = r.inbox_rows == r.accepted_total
        out.append((r.kind, f"inbox rows = accepted replies: {r.inbox_rows} rows, "
                            f"{r.accepted_total} accepted", rows_ok))
    return out


# -- Markdown ----------------------------------------------------------------------------


def noise_warnings(results: list[TargetResult]) -> list[str]:
    """Phases where unrelated load took enough CPU to distort the numbers."""
    out = []
    for r in results:
        for name, phase in (("max throughput", r.peak), ("fixed rate", r.fixed)):
            if phase is not None and phase.cpu_share(phase.other_cpu) > NOISE_LIMIT:
                out.append(f"- {r.kind}, {name}: other processes used "
                           f"{phase.cpu_share(phase.other_cpu):.0f}% of a core")
    return out


def summary_table(results: list[TargetResult]) -> str:
    """The issue's table: per target, max throughput, fixed rate and the ratio."""
    baseline = next((r for r in results if r.kind == "baseline"), None)
    rows = ["| target | max: accepted/s | p50 ms | p99 ms | errors "
            "| fixed: offered/s | achieved/s | p50 ms | p99 ms | errors | stored/baseline |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        if r.failure or r.peak is None or r.fixed is None:
            rows.append(f"| {r.kind} | failed: {r.failure} |" + " |" * 9)
            continue
        value = ratio(r, baseline)
        shown = "—" if r.kind == "baseline" else ("n/a" if value is None else f"{value:.2f}")
        m, f = r.peak, r.fixed
        rows.append(f"| {r.kind} | {m.rate:.0f} | {m.p50:.1f} | {m.p99:.1f} | {m.errors} "
                    f"| {f.offered_rate:.0f} | {f.rate:.0f} | {f.p50:.1f} | {f.p99:.1f} "
                    f"| {f.errors} | {shown} |")
    return "\n".join(rows)


def cpu_table(results: list[TargetResult]) -> str:
    """Where the CPU went in the max-throughput phase: tells server-bound from client-bound
    and shows how much unrelated load shared the machine."""
    rows = ["| target | busy before start | server CPU | server CPU ms/event | loadgen CPU "
            "| other processes |",
            "|---|--:|--:|--:|--:|--:|"]
    for r in results:
        if r.peak is None:
            continue
        m = r.peak
        before = "n/a" if r.busy_before is None else f"{100 * r.busy_before:.0f}%"
        rows.append(f"| {r.kind} | {before} | {m.cpu_share(m.server_cpu):.0f}% "
                    f"| {m.server_ms_per_event:.2f} | {m.cpu_share(m.client_cpu):.0f}% "
                    f"| {m.cpu_share(m.other_cpu):.0f}% |")
    return "\n".join(rows)


def render(results: list[TargetResult], args: argparse.Namespace, command: str,
           pg_version: str, wall_seconds: float) -> str:
    checks = verdicts(results)
    lines = [
        START,
        "## Ingest",
        "",
        "Generated by `bench/ingest.py`, which rewrites only this section (between the "
        "ingest markers); rerun the command below to regenerate it. See `bench/README.md` "
        "for what is measured and how.",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(run took {wall_seconds:.0f} s)",
        *machine_lines(pg_version),
        "",
        "### Command",
        "",
        f"    {command}",
        "",
        *settings_lines(args),
        "",
        "### Results",
        "",
        *_noise_block(results),
        summary_table(results),
        "",
        "Latencies are milliseconds from send (fixed rate: from the scheduled send time) to "
        "the complete reply; errors are replies other than `200 success`, and timeouts.",
        "",
        "#### CPU during the max-throughput phase",
        "",
        cpu_table(results),
        "",
        "CPU seconds used during the phase as a percentage of one core; the machine has "
        f"{_cores()} cores ({100 * _cores()}%) shared by the server, the load generators and "
        "any other processes. \"Busy before start\" is the whole machine's load (share of "
        "all cores) just before the target started. \"Other processes\" is the rest of the "
        "machine's busy time: kernel interrupt and softirq work for loopback networking "
        "(not charged to any process; it grows with the request rate), the PostgreSQL "
        "server's own work for the postgresql target, and unrelated load (noise).",
        "",
        "### Targets",
        "",
        *(f"- {'MET' if ok else 'NOT MET'} — {kind}: {text}" for kind, text, ok in checks),
        "",
        "Overall: " + ("all targets met." if checks and all(ok for *_, ok in checks)
                       else "at least one target NOT met."),
        END,
        "",
    ]
    return "\n".join(lines)


def _noise_block(results: list[TargetResult]) -> list[str]:
    warnings = noise_warnings(results)
    if not warnings:
        return []
    return ["**Warning: other work shared the machine during this run, so these numbers are "
            f"pessimistic and noisy (limit {NOISE_LIMIT:.0f}% of a core); rerun on a quiet "
            "machine before drawing conclusions.**", "", *warnings, ""]


def settings_lines(args: argparse.Namespace) -> list[str]:
    batch = "product default" if args.batch_max is None else str(args.batch_max)
    linger = "product default" if args.linger_ms is None else f"{args.linger_ms:g} ms"
    return [
        "Phases per target: warm-up of "
        f"{args.warmup} events (not reported); max throughput, closed loop with "
        f"{args.concurrency} connections over {args.loadgens} load generator processes, "
        f"capped at {args.max_events} events or {args.duration:g} s; fixed rate, open loop, "
        f"{args.rate:g} events/s offered for {args.rate_duration:g} s, latency from each "
        "request's scheduled send time.",
        "",
        f"Server: `wecom-sync serve --no-worker`; inbox batch max: {batch}; "
        f"linger: {linger}. Baseline: `python -m bench.baseline_app` (same uvicorn options, "
        "same verify/decrypt/parse code, no storage).",
    ]


def machine_lines(pg_version: str) -> list[str]:
    return [
        f"- Machine: {_cores()} cores, {_cpu_model()}, {_ram_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; PostgreSQL {pg_version}; "
        + ", ".join(f"{name} {_version(name)}"
                    for name in ("uvicorn", "uvloop", "httptools", "starlette", "SQLAlchemy",
                                 "psycopg", "httpx")),
    ]


def _cores() -> int:
    return os.cpu_count() or 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return math.nan


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def splice(path: Path, section: str) -> None:
    """Write ``section`` between the ingest markers of ``path``; other benchmarks' sections
    of the same file are kept. A file from before the markers (only ingest) is replaced."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = old.find(START), old.find(END)
    if start != -1 and end > start:
        text = old[:start] + section.strip("\n") + old[end + len(END):]
    elif old.strip() and not old.startswith("# Ingest benchmark results"):
        text = old.rstrip("\n") + "\n\n" + section
    else:
        text = "# Benchmark results\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
