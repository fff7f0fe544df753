"""Numbers and Markdown for the apply benchmark: per-phase results, bounds, targets, and the
apply section of ``bench/RESULTS.md`` (between markers, so the rest of the file is kept)."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.apply_stack import Calls, Scrape
from bench.report import percentile

# The targets.
FIXED_RATE = 50.0  # events/s offered in the latency phase
MAX_P99_S = 1.0  # event-to-applied p99 at that rate
MIN_RATE = 100.0  # applied events/s with 8 concurrent calls
START, END = "<!-- apply:start -->", "<!-- apply:end -->"


@dataclass
class Phase:
    """One phase's events, from the service's own inbox timestamps. Times in seconds."""

    name: str
    kind: str  # create | update | noop | mix
    latency_ms: float  # simulated per-call latency during the phase
    offered_rate: float | None  # None: as fast as the driver can
    events: int
    applied: list[float]  # processed_at − received_at per event
    e2e: list[float]  # processed_at − time the admin change was made, per event
    span_received: float  # last − first received_at
    span_total: float  # last processed_at − first received_at
    statuses: Counter[str]
    calls: Calls  # counted by the simulators
    product: Scrape  # counted and timed by the service (/metrics)
    cpu: dict[str, float]  # CPU seconds per process during the phase
    machine_cpu: float  # busy CPU seconds of the whole machine during the phase
    wall: float  # driver's wall time for the phase, send to settled
    driver_lag: float = 0.0  # fixed rate: worst lateness of a send against its schedule
    callback_replies: list[float] = field(default_factory=list)  # seconds per callback

    @property
    def rate(self) -> float:
        """Applied events/s: first received to last processed."""
        return self.events / self.span_total if self.span_total > 0 else math.nan

    def pct(self, q: float, e2e: bool = False) -> float:
        values = sorted(self.e2e if e2e else self.applied)
        return 1000.0 * percentile(values, q)

    def reply_pct(self, q: float) -> float:
        return 1000.0 * percentile(sorted(self.callback_replies), q)

    def per_event(self, counts: Counter[str]) -> dict[str, float]:
        return {k: v / self.events for k, v in counts.items()} if self.events else {}

    @property
    def service_ms(self) -> float:
        """CPU milliseconds ``wecom-sync serve`` spent per event (receive, store, apply)."""
        return 1000 * self.cpu.get("receiver", math.nan) / self.events if self.events \
            else math.nan

    @property
    def cpu_rate(self) -> float:
        """Events/s one fully available core would allow at this CPU cost per event."""
        return 1000.0 / self.service_ms if self.service_ms > 0 else math.nan

    def calls_per_event(self, side: str = "") -> float:
        calls = self.calls.side(side) if side else self.calls
        return calls.total / self.events if self.events else math.nan

    def writes_per_event(self, side: str = "") -> float:
        calls = self.calls.side(side) if side else self.calls
        return sum(calls.writes.values()) / self.events if self.events else math.nan


# Round trips on an event's critical path, as the product makes its calls: a create re-reads
# WeCom, then creates the user, then sets its departments; an update re-reads WeCom and reads
# the Authing user and its departments side by side, then writes; a no-op only reads.
ROUND_TRIPS = {"create": 3.0, "update": 2.0, "noop": 1.0, "mix": 2.5}  # mix: half and half


@dataclass(frozen=True)
class Bounds:
    """What 20 ms per call allows at best, given the calls an event makes and how many of
    them must wait for one another (``ROUND_TRIPS``)."""

    latency_ms: float
    worker_concurrency: int
    authing_concurrency: int
    wecom_concurrency: int
    wecom_rate_per_minute: float

    def min_latency_ms(self, phase: Phase) -> float:
        return ROUND_TRIPS[phase.kind] * self.latency_ms

    def max_rate(self, phase: Phase) -> float:
        """The tightest of: worker slots, each Authing/WeCom call slot, WeCom's pacing."""
        per_call = self.latency_ms / 1000.0
        limits = [self.worker_concurrency / (ROUND_TRIPS[phase.kind] * per_call)]
        for side, cap in (("authing:", self.authing_concurrency),
                          ("wecom:", self.wecom_concurrency)):
            calls = phase.calls_per_event(side)
            if calls > 0:
                limits.append(cap / (calls * per_call))
        wecom = phase.calls_per_event("wecom:")
        if wecom > 0:
            limits.append(self.wecom_rate_per_minute / 60.0 / wecom)
        return min(limits)


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


def verdicts(fixed: Phase, peak: Phase, noop: Phase) -> list[Verdict]:
    p99 = fixed.pct(0.99) / 1000.0
    kept_up = fixed.rate >= 0.9 * FIXED_RATE
    return [
        Verdict(f"p99 event-to-applied < {MAX_P99_S:g} s at {FIXED_RATE:g} events/s",
                f"p99 {p99:.3f} s at {fixed.rate:.1f} applied events/s", p99 < MAX_P99_S
                and kept_up),
        Verdict(f">= {MIN_RATE:g} applied events/s with 8 concurrent calls",
                f"{peak.rate:.1f} events/s", peak.rate >= MIN_RATE),
        Verdict("0 writes for a no-op event",
                f"{sum(noop.calls.writes.values())} writes for {noop.events} no-op events",
                noop.events > 0 and sum(noop.calls.writes.values()) == 0),
    ]


# -- Markdown -------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f}"


def _num(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def summary_table(phases: list[Phase], bounds: Bounds) -> str:
    rows = ["| phase | latency/call | offered | events | applied p50 / p99 / max (ms) "
            "| end-to-end p50 / p99 (ms) | applied events/s | serial bound (ms) "
            "| rate bound (events/s) | CPU bound (events/s) | Authing calls/event (writes) "
            "| WeCom calls/event |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in phases:
        slow = p.latency_ms > 0
        offered = f"{p.offered_rate:g}/s" if p.offered_rate else "max"
        rows.append(
            f"| {p.name} | {p.latency_ms:g} ms | {offered} | {p.events} "
            f"| {_ms(p.pct(0.5))} / {_ms(p.pct(0.99))} / {_ms(p.pct(1.0))} "
            f"| {_ms(p.pct(0.5, True))} / {_ms(p.pct(0.99, True))} "
            f"| {_num(p.rate, 1)} "
            f"| {_ms(bounds.min_latency_ms(p)) if slow else '—'} "
            f"| {_num(bounds.max_rate(p), 0) if slow else '—'} "
            f"| {_num(p.cpu_rate, 0)} "
            f"| {_num(p.calls_per_event('authing:'))} "
            f"({_num(p.writes_per_event('authing:'))}) "
            f"| {_num(p.calls_per_event('wecom:'))} |")
    return "\n".join(rows)


def calls_table(phases: list[Phase]) -> str:
    """Calls per event by endpoint, as the simulators counted them: where the time goes."""
    endpoints = sorted({k for p in phases for k in (*p.calls.reads, *p.calls.writes)})
    rows = ["| endpoint | kind | " + " | ".join(p.name for p in phases) + " |",
            "|---|---|" + "---|" * len(phases)]
    for endpoint in endpoints:
        is_write = any(endpoint in p.calls.writes for p in phases)
        cells = [_num(p.per_event(p.calls.writes if is_write else p.calls.reads)
                      .get(endpoint, 0.0)) for p in phases]
        rows.append(f"| `{endpoint}` | {'write' if is_write else 'read'} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def product_calls_lines(phases: list[Phase]) -> list[str]:
    """What the service itself counted (``wecom_sync_upstream_calls_total``) per event, and
    how long its calls took on average (queueing for a call slot included)."""
    lines = []
    for p in phases:
        per = p.per_event(p.product.calls)
        text = ", ".join(f"`{k}` {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        lines.append(f"- {p.name}: mean call Authing {_ms(p.product.mean_ms('authing'))} ms, "
                     f"WeCom {_ms(p.product.mean_ms('wecom'))} ms; {text or 'no calls'}")
    return lines


def cpu_table(phases: list[Phase]) -> str:
    names = sorted({n for p in phases for n in p.cpu})
    rows = ["| phase | wall (s) | " + " | ".join(names) + " | service CPU ms/event "
            "| other processes | callback reply p50 / p99 (ms) |",
            "|---|---|" + "---|" * len(names) + "---|---|---|"]
    for p in phases:
        share = [f"{100 * p.cpu[n] / p.wall:.0f}%" if p.wall > 0 else "—" for n in names]
        other = p.machine_cpu - sum(p.cpu.values())
        rows.append(f"| {p.name} | {p.wall:.1f} | " + " | ".join(share)
                    + f" | {_num(p.service_ms, 1)} | {100 * max(0.0, other) / p.wall:.0f}% "
            f"| {_ms(p.reply_pct(0.5))} / {_ms(p.reply_pct(0.99))} |")
    return "\n".join(rows)


def ratio_lines(phases: dict[str, Phase], bounds: Bounds) -> list[str]:
    """Measured against the same run's baselines: the serial bound and the 0 ms pipeline."""
    fixed, peak, zero = phases["fixed-rate"], phases["throughput"], phases.get("baseline-0ms")
    lines = [
        f"- Fixed rate: applied p50 {fixed.pct(0.5):.0f} ms is "
        f"{fixed.pct(0.5) / bounds.min_latency_ms(fixed):.2f}× the serial bound "
        f"({ROUND_TRIPS[fixed.kind]:g} round trips × {bounds.latency_ms:g} ms = "
        f"{bounds.min_latency_ms(fixed):.0f} ms); p99 is "
        f"{fixed.pct(0.99) / bounds.min_latency_ms(fixed):.2f}× it.",
        f"- Throughput: {peak.rate:.1f} events/s is {peak.rate / bounds.max_rate(peak):.2f}× "
        f"the rate bound ({bounds.max_rate(peak):.0f} events/s: the least of "
        f"{bounds.worker_concurrency} entities at a time / ({ROUND_TRIPS[peak.kind]:g} "
        f"round trips × {bounds.latency_ms:g} ms), {bounds.authing_concurrency} Authing call "
        f"slots / ({peak.calls_per_event('authing:'):.2f} calls × {bounds.latency_ms:g} ms), "
        f"{bounds.wecom_concurrency} WeCom call slots likewise, and WeCom pacing of "
        f"{bounds.wecom_rate_per_minute:g}/min).",
    ]
    if zero is not None:
        lines.append(
            f"- Same pipeline with 0 ms per call: {zero.rate:.1f} events/s, so the 20 ms "
            f"run reached {peak.rate / zero.rate:.2f}× what the service managed without "
            f"upstream latency on this machine (service CPU {zero.service_ms:.1f} ms/event "
            f"there; one full core would allow {zero.cpu_rate:.0f} events/s).")
    lines.append(ceiling_line(peak, MIN_RATE))
    fit = cpu_fit([phases[k] for k in ("create", "update", "no-op") if k in phases])
    if fit is not None:
        lines.append(
            f"- Service CPU per event against calls per event (create, update, no-op "
            f"phases, least squares): ≈ {fit[0]:.1f} ms per upstream call + {fit[1]:.1f} ms "
            "per event (callback or ops request, inbox, claim, settle).")
    return lines


def ceiling_line(phase: Phase, target: float, unit: str = "events") -> str:
    """What the whole machine could carry at ``phase``'s CPU cost per event, every process
    counted (the service, PostgreSQL, both simulators and the driver share the cores), set
    against ``target`` events/s."""
    cores = os.cpu_count() or 1
    if not phase.events or phase.machine_cpu <= 0:
        return ""
    total_ms = 1000 * phase.machine_cpu / phase.events
    service = phase.service_ms
    ceiling = cores * 1000 / total_ms
    verdict = "above" if target > ceiling else "within"
    return (f"- Machine ceiling ({phase.name}): every process together spent {total_ms:.1f} ms "
            f"of CPU per {unit[:-1]} (the service {service:.1f} ms, the rest PostgreSQL, both "
            f"simulators and this driver), so {cores} cores carry at most {ceiling:.0f} "
            f"{unit}/s however the work overlaps; {target:.0f}/s is {verdict} that. The "
            f"service alone would allow {1000 / service:.0f}/s on a core of its own.")


def cpu_fit(phases: list[Phase]) -> tuple[float, float] | None:
    """(ms per call, ms per event) from a straight line through (calls, CPU ms) per event."""
    points = [(p.calls_per_event(), p.service_ms) for p in phases]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return slope, mean_y - slope * mean_x


def noise_warning(phases: list[Phase], limit: float = 0.6) -> list[str]:
    """A loud line when unrelated work used more than ``limit`` of a core in some phase."""
    shares = {p.name: (p.machine_cpu - sum(p.cpu.values())) / p.wall for p in phases
              if p.wall > 0}
    busy = {name: share for name, share in shares.items() if share > limit}
    if not busy:
        return []
    worst = ", ".join(f"{name} {100 * share:.0f}%" for name, share in busy.items())
    return [f"**Warning: other processes used more than {100 * limit:.0f}% of a core during "
            f"{worst} (PostgreSQL included), so latency and rate are pessimistic; CPU ms per "
            "event and calls per event are the steadier numbers. Rerun on a quiet machine "
            "before drawing conclusions about latency.**", ""]


def render(phases: list[Phase], bounds: Bounds, *, command: str, machine: list[str],
           settings: list[str], wall_seconds: float, notes: list[str]) -> str:
    by_name = {p.name: p for p in phases}
    checks = verdicts(by_name["fixed-rate"], by_name["throughput"], by_name["no-op"])
    lines = [
        START,
        "# Apply benchmark results",
        "",
        "Generated by `bench/apply.py` (this section only; rerun the command to regenerate "
        "it). See `bench/README.md` for what is measured and how.",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(run took {wall_seconds:.0f} s)",
        *machine,
        f"- Command: `{command}`",
        "",
        *settings,
        "",
        "## Results",
        "",
        *noise_warning(phases),
        summary_table(phases, bounds),
        "",
        "*Applied*: the service's own inbox timestamps, `processed_at − received_at` (event "
        "stored → changes written to Authing and the event settled). *End-to-end*: from the "
        "moment the benchmark made the change in the WeCom simulator's admin console "
        "(callback delivery included) to `processed_at`; for ops syncs, from the "
        "`POST /ops/sync/users/…`. *Applied events/s*: events / (last processed − first "
        "received). *Serial bound*: round trips on an event's critical path × per-call "
        "latency, the least an event can take (reads that do not depend on each other are "
        "made side by side). *Rate bound*: the most events/s "
        "the configured concurrency allows at that latency (see below). *CPU bound*: "
        "1000 / the service's CPU ms per event, the most events/s if it had one core to "
        "itself (it is one Python process).",
        "",
        "## Targets",
        "",
        *(f"- {'MET' if v.met else 'NOT MET'} — {v.target}: {v.measured}" for v in checks),
        "",
        "Overall: " + ("all targets met." if all(v.met for v in checks)
                       else "at least one target NOT met."),
        "",
        "## Against the baselines of this run",
        "",
        *ratio_lines(by_name, bounds),
        "",
        "## Calls per event, by endpoint (counted by the simulators)",
        "",
        calls_table(phases),
        "",
        "As the service counted them (`wecom_sync_upstream_calls_total`, per event; the "
        "outcome is shown when not `ok`), with the mean time of one call as the service "
        "saw it (`wecom_sync_upstream_call_seconds`: simulated latency + the simulator's "
        "work + waiting for the service's event loop):",
        "",
        *product_calls_lines(phases),
        "",
        "## CPU per phase (share of one core; the machine has "
        f"{_cores_text(machine)})",
        "",
        cpu_table(phases),
        "",
        "*receiver* is `wecom-sync serve` (receiver and worker); *driver* is this script; "
        "*other processes* is the rest of the machine's busy time (PostgreSQL, and any "
        "unrelated load: numbers from a busy machine are pessimistic). *Callback reply*: "
        "how long the service took to answer the simulator's callback POSTs during the "
        "phase (WeCom's deadline is 5 s).",
        "",
        *notes,
        END,
    ]
    return "\n".join(lines) + "\n"


def _cores_text(machine: list[str]) -> str:
    text = machine[0] if machine else ""
    return text.split(",", 1)[0].removeprefix("- Machine: ") or "unknown cores"


def splice(path: Path, section: str, markers: tuple[str, str] = (START, END)) -> None:
    """Put ``section`` between the ``markers`` (the apply section's unless given) of
    ``path``, keeping everything else."""
    first, last = markers
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = old.find(first), old.find(last)
    if start != -1 and end > start:
        text = old[:start] + section.rstrip("\n") + old[end + len(last):]
    elif old.strip():
        text = old.rstrip("\n") + "\n\n" + section
    else:
        text = section
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
