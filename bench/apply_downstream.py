"""Apply benchmark, downstream: how fast ``wecom-sync serve`` with
``WECOM_SYNC_DIRECTION=downstream`` turns Authing changes into WeCom writes.

    python -m bench.apply --direction downstream

The same three processes as the upstream run (``bench.apply_stack``), the service set to
the downstream direction with an Authing webhook secret. The benchmark registers the
service's ``POST /authing/webhook`` in the Authing simulator, then makes every change in
the Authing simulator's admin console; the simulator pushes the webhooks as Authing does,
and the service re-reads the entity from Authing and writes to WeCom. Both simulators
answer every API call after ``--latency-ms``.

A changed entity can cause several webhooks (a new user: ``user:created`` and
``organization:member-added``, then the echoes of the userid written back to Authing), so
latency is per changed entity and taken on its first webhook, the one whose handling
writes to WeCom: from it being stored to it being settled, its WeCom write done
(*applied*), and from the change made in the console to the same moment (*end-to-end*).
The later webhooks are counted (calls, CPU) but not timed. Only the part of the results
file between the ``apply-downstream`` markers is replaced.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import apply_report as report
from bench.apply import Counters, _with_log_on_error, drive
from bench.apply_report import Bounds, Phase, Verdict
from bench.apply_stack import Row, Stack, Tuning, running_stack
from bench.ingest import fresh_database, new_keys

START, END = "<!-- apply-downstream:start -->", "<!-- apply-downstream:end -->"
MAX_P99_S = 0.2  # the target: event → applied in WeCom p99 at 50 events/s
MIN_SHARE = 0.8  # of the rate bound set by calls per event and concurrency
ORGANIZATION = "wecom"  # the service's default organization code
HOOK_SECRET = "bench-webhook-secret"
DEPARTMENTS = 10  # created in the warm-up, under the organization's root


class Console:
    """The Authing simulator's admin console: every change fires its webhooks."""

    def __init__(self, stack: Stack) -> None:
        self.sims = stack.sims

    def call(self, path: str, body: dict[str, Any]) -> Any:
        return self.sims._authing(path, body)  # noqa: SLF001 - same package's helper

    def add_webhook(self, url: str) -> None:
        self.call("webhooks", {"url": url, "secret": HOOK_SECRET})

    def create_department(self, name: str) -> str:
        return str(self.call("departments", {"organizationCode": ORGANIZATION, "name": name,
                                             "parentDepartmentId": "root"})["departmentId"])

    def create_user(self, username: str, name: str, department: str) -> str:
        return str(self.call("users", {"username": username, "name": name,
                                       "email": f"{username}@bench.example.com",
                                       "departmentIds": [department]})["userId"])

    def update_user(self, user_id: str, **fields: Any) -> None:
        self.call("users/update", {"userId": user_id, **fields})

    def drain(self) -> None:
        """Until every webhook queued so far has been delivered (bounded by the sim)."""
        self.call("webhooks/drain", {"timeout": 30.0})


class Driver:
    """Makes Authing changes, each phase to different users (no folding per entity)."""

    def __init__(self, stack: Stack, deadline: float) -> None:
        self.stack = stack
        self.console = Console(stack)
        self.deadline = deadline
        self.departments: list[str] = []
        self.synced: deque[str] = deque()  # Authing user ids in step with WeCom
        self._serial = itertools.count(1)

    def plan(self, tag: str, creates: int, updates: int,
             noops: int = 0) -> list[tuple[str, str]]:
        """(kind, tag or user id): creates and updates interleaved, then no-ops."""
        wanted = max(updates, noops)
        if wanted > len(self.synced):
            raise RuntimeError(f"{tag}: only {len(self.synced)} synced users for {wanted} "
                               "updates/no-ops; raise --warmup-users")
        targets = [self.synced[i] for i in range(wanted)]
        self.synced.rotate(-updates)
        made = [("create", f"{tag}{i:05d}") for i in range(creates)]
        changed = [("update", u) for u in targets[:updates]]
        mixed = [c for pair in itertools.zip_longest(made, changed) for c in pair if c]
        return mixed + [("noop", u) for u in targets[:noops]]

    def make(self, kind: str, subject: str) -> str:
        """Make one change; the Authing user id it concerns."""
        serial = next(self._serial)
        if kind == "create":
            department = self.departments[serial % len(self.departments)]
            return self.console.create_user(subject, f"用户{serial}", department)
        if kind == "update":  # a field WeCom holds: one user/update
            self.console.update_user(subject, name=f"改名{serial}")
        else:  # a field WeCom does not hold: re-read, nothing to write
            self.console.update_user(subject, nickname=f"昵称{serial}")
        return subject

    def run(self, name: str, kind: str, changes: list[tuple[str, str]], *,
            latency_ms: float, rate: float | None = None) -> Phase:
        stack = self.stack
        mark = stack.inbox.max_id()
        counters = Counters.read(stack)
        sent: dict[str, float] = {}
        created: list[str] = []

        def make(change: tuple[str, str]) -> None:
            at = time.time()
            subject = self.make(*change)
            sent[subject] = at
            if change[0] == "create":  # changes run side by side: not in ``sent``'s order
                created.append(subject)

        lag = drive(changes, make, rate, counters.started)
        self._settle(name, mark, set(sent))
        wall = time.monotonic() - counters.started
        rows = stack.inbox.rows(mark)
        first: dict[str, Row] = {}  # per changed entity, its first webhook stored
        for row in rows:
            if row.entity_key in sent and row.processed_at is not None:
                first.setdefault(row.entity_key, row)
        received = [r.received_at for r in rows]
        end = max((r.processed_at for r in rows if r.processed_at), default=None)
        phase = Phase(
            name=name, kind=kind, latency_ms=latency_ms, offered_rate=rate, events=len(sent),
            applied=[_seconds(r) for r in first.values()],
            e2e=[_at(r) - sent[k] for k, r in first.items()],
            span_received=(max(received) - min(received)).total_seconds() if rows else 0.0,
            span_total=(end - min(received)).total_seconds() if end else math.nan,
            statuses=Counter(r.status for r in rows), wall=wall, driver_lag=lag,
            **counters.since(stack))
        self.synced.extend(created)
        print(f"[{name}] {phase.events} changes ({len(rows)} webhooks, received over "
              f"{phase.span_received:.1f} s of {phase.span_total:.1f}) in {wall:.1f} s: "
              f"applied p50 {phase.pct(0.5):.0f} ms, p99 {phase.pct(0.99):.0f} ms, "
              f"{phase.rate:.1f}/s, WeCom calls/change {phase.calls_per_event('wecom:'):.2f} "
              f"(writes {phase.writes_per_event('wecom:'):.2f}), statuses "
              f"{dict(phase.statuses)}", flush=True)
        return phase

    def _settle(self, name: str, mark: int, entities: set[str]) -> None:
        """Until every changed entity has an event, every webhook sent so far (the
        write-back echoes follow the writes) is stored and all are settled."""
        seen: set[str] = set()
        while True:
            self.console.drain()
            total, settled = self.stack.inbox.progress(mark)  # counts: cheap to poll
            if total == settled:
                seen = {r.entity_key for r in self.stack.inbox.rows(mark)}
                if entities <= seen:
                    self.console.drain()
                    if self.stack.inbox.progress(mark)[0] == total:
                        return
            self.stack.check_alive()
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"{name}: out of time with {len(entities - seen)} of "
                                   f"{len(entities)} changes without an event")
            time.sleep(0.05)


def _seconds(row: Row) -> float:
    assert row.processed_at is not None
    return (row.processed_at - row.received_at).total_seconds()


def _at(row: Row) -> float:
    assert row.processed_at is not None
    return row.processed_at.timestamp()


def run_phases(driver: Driver, args: argparse.Namespace) -> list[Phase]:
    stack = driver.stack
    print("[warm-up] departments and users", flush=True)
    driver.departments = [driver.console.create_department(f"部门{i}")
                          for i in range(DEPARTMENTS)]
    from bench.apply import timed_phases

    return timed_phases(driver, stack, args)


def verdicts(by_name: dict[str, Phase], bounds: Bounds) -> list[Verdict]:
    fixed, peak, noop = by_name["fixed-rate"], by_name["throughput"], by_name["no-op"]
    p99 = fixed.pct(0.99) / 1000.0
    bound = bounds.max_rate(peak)
    wecom_writes = sum(noop.calls.side("wecom:").writes.values())
    return [
        Verdict(f"p99 event → applied in WeCom < {1000 * MAX_P99_S:g} ms at "
                f"{report.FIXED_RATE:g} events/s",
                f"p99 {1000 * p99:.0f} ms at {fixed.rate:.1f} applied changes/s",
                p99 < MAX_P99_S and fixed.rate >= 0.9 * report.FIXED_RATE),
        Verdict(f"throughput >= {MIN_SHARE:g} × the rate bound",
                f"{peak.rate:.1f} changes/s = {peak.rate / bound:.2f} × {bound:.0f}/s",
                peak.rate >= MIN_SHARE * bound),
        Verdict("0 WeCom writes for a no-op change",
                f"{wecom_writes} WeCom writes for {noop.events} no-op changes",
                noop.events > 0 and wecom_writes == 0),
    ]


def per_entity_table(phases: list[Phase]) -> str:
    """WeCom and Authing calls per changed entity, reads and writes, by kind of change."""
    rows = ["| change in Authing | webhooks stored per change | Authing reads | WeCom reads "
            "| WeCom writes | Authing writes (write-backs) |", "|---|--:|--:|--:|--:|--:|"]
    for p in phases:
        if p.kind == "mix" or not p.events:
            continue
        authing, wecom = p.calls.side("authing:"), p.calls.side("wecom:")
        rows.append(
            f"| {p.name} | {sum(p.statuses.values()) / p.events:.2f} "
            f"| {sum(authing.reads.values()) / p.events:.2f} "
            f"| {sum(wecom.reads.values()) / p.events:.2f} "
            f"| {sum(wecom.writes.values()) / p.events:.2f} "
            f"| {sum(authing.writes.values()) / p.events:.2f} |")
    return "\n".join(rows)


def render(phases: list[Phase], bounds: Bounds, *, command: str, machine: list[str],
           args: argparse.Namespace, tuning: Tuning, wall_seconds: float,
           peaks: dict[str, int]) -> str:
    by_name = {p.name: p for p in phases}
    checks = verdicts(by_name, bounds)
    peak = by_name["throughput"]
    return "\n".join([
        START,
        "## Apply, downstream (Authing → WeCom)",
        "",
        "Generated by `python -m bench.apply --direction downstream` "
        "(`bench/apply_downstream.py`; this section only).",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(run took {wall_seconds:.0f} s)",
        *machine,
        f"- Command: `{command}`",
        "",
        f"Processes: WeCom simulator, `wecom-sync serve` on {args.db_kind} with "
        "`WECOM_SYNC_DIRECTION=downstream`, Authing simulator pushing its webhooks to "
        f"`POST /authing/webhook`; each simulator answers every API call after "
        f"{args.latency_ms:g} ms. Service settings: "
        + ", ".join(f"`{k}={v}`" for k, v in tuning.env().items()) + ".",
        "",
        f"Changes, all made in the Authing simulator's console: warm-up ({DEPARTMENTS} "
        f"departments, {args.warmup_users} users); create (a new user in a department), "
        "update (a new name), no-op (a new nickname, which WeCom does not hold), "
        f"{args.profile_events} each; fixed-rate ({args.rate:g} changes/s for "
        f"{args.rate_duration:g} s, half creates, half updates); throughput ({args.events} "
        f"back to back); baseline-0ms ({args.baseline_events}, 0 ms per call).",
        "",
        *report.noise_warning(phases),
        report.summary_table(phases, bounds),
        "",
        "Per changed entity (a user), on its first webhook, whose handling writes to "
        "WeCom: *applied* from it being stored to it being settled; *end-to-end* from the "
        "change in the console. *Events* in the table are changes; a create sends several "
        "webhooks (its later ones, the member added and the echoes of the userid written "
        "back, are counted in calls and CPU, not timed). "
        "*Serial bound*: a create reads Authing, creates the member, writes the userid "
        "back (3 round trips); an update reads Authing and WeCom side by side, then "
        "writes (2); a no-op reads (1).",
        "",
        "### Targets",
        "",
        *(f"- {'MET' if v.met else 'NOT MET'} — {v.target}: {v.measured}" for v in checks),
        "",
        f"Throughput against its bound: {peak.rate:.1f} changes/s, the bound "
        f"{bounds.max_rate(peak):.0f}/s being the least of {bounds.worker_concurrency} "
        f"entities at a time / ({report.ROUND_TRIPS[peak.kind]:g} round trips × "
        f"{bounds.latency_ms:g} ms), each side's {bounds.authing_concurrency} call slots "
        f"/ (its calls per change × {bounds.latency_ms:g} ms), and WeCom's pacing of "
        f"{bounds.wecom_rate_per_minute:g} calls a minute / its calls per change.",
        "",
        report.ceiling_line(peak, MIN_SHARE * bounds.max_rate(peak), unit="changes"),
        "",
        "### Calls per changed entity",
        "",
        per_entity_table(phases),
        "",
        "By endpoint (counted by the simulators), per change:",
        "",
        report.calls_table(phases),
        "",
        "As the service counted them, with the mean time of one call as the service saw it "
        "(simulated latency + the simulator's work + waiting for a call slot and for the "
        "service's event loop):",
        "",
        *report.product_calls_lines(phases),
        "",
        "### CPU per phase (share of one core)",
        "",
        report.cpu_table(phases),
        "",
        f"Peak calls in flight seen by the simulators: {peaks}. Events not `done`: "
        + (str({p.name: dict(p.statuses) for p in phases if set(p.statuses) - {"done"}})
           or "none") + ".",
        END,
    ]) + "\n"


def _product_default(setting: str) -> int:
    """A setting's default as deployed: the downstream run measures the service as
    shipped, 8 call slots a remote and 16 entities at once."""
    from sync_core.settings import Settings

    return int(Settings.model_fields[setting].default)


def main(args: argparse.Namespace, command: str) -> int:
    """``bench.apply``'s entry for ``--direction downstream`` (its options)."""
    from bench.apply import Measured, run_measured

    tuning = Tuning(worker_concurrency=args.workers or _product_default("worker_concurrency"),
                    authing_max_concurrency=args.concurrency,
                    wecom_max_concurrency=args.concurrency)

    def write(run: Measured) -> list[Verdict]:
        section = render(run.phases, run.bounds, command=command, machine=run.machine,
                         args=args, tuning=tuning, wall_seconds=run.wall(), peaks=run.peaks)
        report.splice(args.output, section, (START, END))
        return verdicts({p.name: p for p in run.phases}, run.bounds)

    return run_measured(args, tuning, measure, write, "apply-downstream")


def measure(args: argparse.Namespace, tuning: Tuning) -> tuple[list[Phase], dict[str, int]]:
    deadline = time.monotonic() + args.max_seconds
    downstream = {"WECOM_SYNC_DIRECTION": "downstream",
                  "WECOM_SYNC_AUTHING_WEBHOOK_SECRET": HOOK_SECRET}
    with tempfile.TemporaryDirectory(prefix="bench-apply-down-") as tmp:
        workdir = Path(tmp)
        with fresh_database(args.db_kind, workdir, args.database) as db:
            assert db is not None
            with running_stack(keys=new_keys(), db=db, tuning=tuning,
                               latency_ms=args.latency_ms, workdir=workdir,
                               service_env=downstream) as stack:
                driver = Driver(stack, deadline)
                driver.console.add_webhook(f"{stack.receiver.url}/authing/webhook")
                body: Callable[[], list[Phase]] = lambda: run_phases(driver, args)  # noqa: E731
                phases = _with_log_on_error(stack, body)
                return phases, stack.sims.peak_concurrency()
