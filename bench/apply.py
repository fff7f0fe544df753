"""Apply benchmark: how fast ``wecom-sync serve`` turns WeCom changes into Authing writes.

One command, from the repository root::

    python -m bench.apply        # or: python bench/apply.py

It starts the WeCom simulator, the service (receiver + worker) and the Authing simulator as
separate processes, both simulators answering every API call after 20 ms, and makes
changes in the WeCom simulator's admin console, which calls them back to the service as
WeCom would. Phases: warm-up; calls per event for creates, updates and no-op syncs; a
fixed rate of 50 changes/s (latency); as many changes as fast as possible with 8 concurrent
calls (throughput); the same with 0 ms per call (the CPU-bound baseline). It writes the
apply section of ``bench/RESULTS.md``. Everything it starts is stopped again, also on error.
"""

from __future__ import annotations

import argparse
import itertools
import math
import resource
import shlex
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as ``python bench/apply.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg

from bench import apply_report as report
from bench.apply_report import Bounds, Phase, Verdict
from bench.apply_stack import Stack, Tuning, running_stack
from bench.ingest import fresh_database, new_keys, pg_version
from bench.procs import ROOT, machine_busy_seconds, wait_for_quiet
from bench.report import machine_lines

DEPARTMENTS = range(2, 12)  # WeCom department ids created in the warm-up, under the root
DRIVER_THREADS = 8  # changes made at a time in the back-to-back phases


@dataclass(frozen=True)
class Change:
    """One thing the driver does: a WeCom admin change, or an ops "sync this user now"."""

    kind: str  # create | update | noop
    userid: str
    serial: int


class Driver:
    """Makes changes and keeps the pool of users that exist and are in sync in Authing,
    so that every update of a phase goes to a different user (no batching per entity)."""

    def __init__(self, stack: Stack, deadline: float) -> None:
        self.stack = stack
        self.deadline = deadline
        self.synced: deque[str] = deque()
        self._serial = itertools.count(1)
        self._delivery_seq = 0

    def plan(self, tag: str, creates: int, updates: int, noops: int = 0) -> list[Change]:
        """Interleaved creates and updates (then no-ops), each user at most once."""
        if updates > len(self.synced) or noops > len(self.synced):
            raise RuntimeError(f"{tag}: only {len(self.synced)} synced users for "
                               f"{max(updates, noops)} updates/no-ops; raise --warmup-users")
        made = [Change("create", f"{tag}{i:05d}", next(self._serial)) for i in range(creates)]
        targets = [self.synced[i] for i in range(max(updates, noops))]
        self.synced.rotate(-updates)  # the next phase updates other users first
        changed = [Change("update", u, next(self._serial)) for u in targets[:updates]]
        changes = [c for pair in itertools.zip_longest(made, changed) for c in pair if c]
        return changes + [Change("noop", u, next(self._serial)) for u in targets[:noops]]

    def make(self, change: Change) -> None:
        sims = self.stack.sims
        if change.kind == "create":
            department = DEPARTMENTS[change.serial % len(DEPARTMENTS)]
            sims.create_user(change.userid, f"用户{change.serial}", department,
                             mobile=f"139{change.serial:08d}")
        elif change.kind == "update":
            sims.update_user(change.userid, f"改名{change.serial}")
        else:
            self.stack.receiver.sync_user(change.userid)

    def run(self, name: str, kind: str, changes: list[Change], *, latency_ms: float,
            rate: float | None = None) -> Phase:
        """Make ``changes`` (at ``rate``/s, or back to back), wait until every resulting
        event is settled, and read the inbox, the counters and the CPU clocks."""
        stack = self.stack
        mark = stack.inbox.max_id()
        counters = Counters.read(stack)
        sent: dict[str, float] = {}

        def make(change: Change) -> None:
            sent[change.userid] = time.time()
            self.make(change)

        lag = drive(changes, make, rate, counters.started)
        self._settle(name, mark, len(changes))
        wall = time.monotonic() - counters.started
        rows = stack.inbox.rows(mark)
        self._delivery_seq, replies = stack.sims.callback_replies(self._delivery_seq)
        done = [(r, r.processed_at) for r in rows if r.processed_at is not None]
        received = [r.received_at for r in rows]
        last = max((at for _, at in done), default=None)
        phase = Phase(
            name=name, kind=kind, latency_ms=latency_ms, offered_rate=rate, events=len(rows),
            applied=[(at - r.received_at).total_seconds() for r, at in done],
            e2e=[at.timestamp() - sent[r.entity_key] for r, at in done if r.entity_key in sent],
            span_received=(max(received) - min(received)).total_seconds() if rows else 0.0,
            span_total=(last - min(received)).total_seconds() if last else math.nan,
            statuses=Counter(r.status for r in rows), wall=wall, driver_lag=lag,
            callback_replies=replies, **counters.since(stack))
        self.synced.extend(c.userid for c in changes if c.kind == "create")
        print(f"[{name}] {phase.events} events in {wall:.1f} s: applied p50 "
              f"{phase.pct(0.5):.0f} ms, p99 {phase.pct(0.99):.0f} ms, {phase.rate:.1f}/s, "
              f"{phase.calls_per_event():.2f} calls/event "
              f"({phase.writes_per_event():.2f} writes), statuses {dict(phase.statuses)}",
              flush=True)
        return phase

    def _settle(self, name: str, mark: int, expected: int) -> None:
        """Until every expected event is in the inbox and done or dead (bounded)."""
        while True:
            total, settled = self.stack.inbox.progress(mark)
            if total >= expected and settled == total:
                return
            self.stack.check_alive()
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"{name}: out of time with {total}/{expected} events "
                                   f"stored and {settled} settled")
            time.sleep(0.05)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Counters:
    """What a phase reads before and after: simulator calls, the service's metrics, CPU
    clocks (service processes, the machine, this driver) and the wall clock."""

    calls: Any
    scrape: Any
    cpu: dict[str, float]
    busy: float
    own: float
    started: float

    @classmethod
    def read(cls, stack: Stack) -> Counters:
        return cls(stack.sims.calls(), stack.receiver.scrape(), stack.cpu_seconds(),
                   machine_busy_seconds(), _own_cpu(), time.monotonic())

    def since(self, stack: Stack) -> dict[str, Any]:
        """``Phase`` fields: ``calls``, ``product``, ``cpu``, ``machine_cpu``."""
        cpu = stack.cpu_seconds()
        return {"calls": stack.sims.calls() - self.calls,
                "product": stack.receiver.scrape() - self.scrape,
                "cpu": {k: cpu[k] - self.cpu[k] for k in self.cpu}
                | {"driver": _own_cpu() - self.own},
                "machine_cpu": machine_busy_seconds() - self.busy}


def drive(changes: list[T], make: Callable[[T], None], rate: float | None,
          started: float) -> float:
    """Make ``changes``: at ``rate``/s from ``started`` (open loop, one at a time), or back
    to back ``DRIVER_THREADS`` at a time, so the driver is not what limits the rate.
    Returns the worst lateness against the schedule, s."""
    if not rate:
        with ThreadPoolExecutor(DRIVER_THREADS) as pool:
            list(pool.map(make, changes))
        return 0.0
    lag = 0.0
    for i, change in enumerate(changes):
        due = started + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        lag = max(lag, time.monotonic() - due)
        make(change)
    return lag


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_phases(driver: Driver, args: argparse.Namespace) -> list[Phase]:
    stack = driver.stack
    print("[warm-up] departments and users", flush=True)
    for dept in DEPARTMENTS:
        stack.sims.create_department(dept, f"部门{dept}")
    return timed_phases(driver, stack, args)


def timed_phases(driver: Any, stack: Stack, args: argparse.Namespace) -> list[Phase]:
    """The phases of either direction, on its ``driver`` (``plan`` and ``run``, as
    ``Driver``'s): warm-up, create, update, no-op, fixed rate, throughput, baseline-0ms."""
    ms = args.latency_ms
    driver.run("warm-up", "create", driver.plan("w", args.warmup_users, 0), latency_ms=ms)
    n = args.profile_events
    phases = [
        driver.run("create", "create", driver.plan("c", n, 0), latency_ms=ms),
        driver.run("update", "update", driver.plan("u", 0, n), latency_ms=ms),
        driver.run("no-op", "noop", driver.plan("n", 0, 0, noops=n), latency_ms=ms),
    ]
    fixed = int(args.rate * args.rate_duration)
    phases.append(driver.run("fixed-rate", "mix",
                             driver.plan("f", fixed - fixed // 2, fixed // 2),
                             latency_ms=ms, rate=args.rate))
    half = args.events // 2
    phases.append(driver.run("throughput", "mix", driver.plan("t", args.events - half, half),
                             latency_ms=ms))
    if not args.no_baseline:
        stack.sims.set_latency(0)
        half = args.baseline_events // 2
        phases.append(driver.run("baseline-0ms", "mix",
                                 driver.plan("z", args.baseline_events - half, half),
                                 latency_ms=0))
    return phases


def settings_lines(args: argparse.Namespace, tuning: Tuning, db_kind: str) -> list[str]:
    return [
        "Processes: WeCom simulator, `wecom-sync serve` (receiver + worker, one process) on "
        f"{db_kind}, Authing simulator; each simulator answers every API call after "
        f"{args.latency_ms:g} ms. Service settings: "
        + ", ".join(f"`{k}={v}`" for k, v in tuning.env().items()) + ".",
        "",
        f"Phases: warm-up ({len(DEPARTMENTS)} departments, {args.warmup_users} users; not "
        f"reported); create / update / no-op ({args.profile_events} events each, one kind "
        f"at a time, for calls per event); fixed-rate ({args.rate:g} changes/s for "
        f"{args.rate_duration:g} s, half creates, half updates); throughput ({args.events} "
        "changes made back to back, half creates, half updates); baseline-0ms "
        f"({args.baseline_events} changes, the same with 0 ms per call). Every event of a "
        "phase is about a different user.",
    ]


def notes_lines(phases: list[Phase], peaks: dict[str, int]) -> list[str]:
    fixed = next(p for p in phases if p.name == "fixed-rate")
    lines = ["Notes:", "",
             f"- The fixed-rate driver's worst lateness against its schedule was "
             f"{1000 * fixed.driver_lag:.0f} ms (open loop: a slow service does not slow "
             "the offered rate)."]
    for p in phases:
        if p.offered_rate is None and p.events:
            limit = ("the worker, not the arrival of events, set the rate"
                     if p.span_received < 0.8 * p.span_total else
                     "events arrived over most of that time, so their arrival (callbacks: "
                     "simulator pusher → receiver; no-ops: the driver's ops calls) held "
                     "the rate down")
            lines.append(f"- {p.name}: the {p.events} events were stored within "
                         f"{p.span_received:.1f} s and applied within {p.span_total:.1f} s: "
                         f"{limit}.")
    lines.append(f"- Peak calls in flight seen by the simulators over the run: {peaks}.")
    bad = {p.name: dict(p.statuses) for p in phases if set(p.statuses) - {"done"}}
    if bad:
        lines.append(f"- Events not `done`: {bad}.")
    return lines + [""]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="wecom-sync apply benchmark",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--direction", choices=["upstream", "downstream"], default="upstream",
                   help="upstream: WeCom changes to Authing; downstream: Authing changes "
                        "(webhooks) to WeCom (bench/apply_downstream.py)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="per API call, both sims")
    p.add_argument("--rate", type=float, default=report.FIXED_RATE,
                   help="fixed-rate phase: changes/s")
    p.add_argument("--rate-duration", type=float, default=20.0, help="fixed-rate phase, s")
    p.add_argument("--events", type=int, default=1500, help="throughput phase: changes")
    p.add_argument("--baseline-events", type=int, default=1000,
                   help="baseline-0ms phase: changes")
    p.add_argument("--profile-events", type=int, default=200,
                   help="create / update / no-op phases: events each")
    p.add_argument("--warmup-users", type=int, default=300, help="users synced first")
    p.add_argument("--concurrency", type=int, default=8,
                   help="AUTHING_MAX_CONCURRENCY (and WECOM_MAX_CONCURRENCY downstream)")
    p.add_argument("--workers", type=int, default=None,
                   help="WORKER_CONCURRENCY: entities applied at once (default: upstream "
                        "--concurrency, as 'with 8 concurrent calls' is read; downstream "
                        "the product's default)")
    p.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="a PostgreSQL DSN (a fresh schema is made in it, dropped after), "
                        "or 'sqlite' (a file in a temporary directory)")
    p.add_argument("--no-baseline", action="store_true", help="skip the 0 ms phase")
    p.add_argument("--max-seconds", type=float, default=290.0,
                   help="give up (and stop everything) after this long")
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="wait up to this long for other load on the machine to stop, s")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md",
                   help="Markdown report; only the apply section is replaced")
    args = p.parse_args(argv)
    args.db_kind = "sqlite" if args.database == "sqlite" else "postgresql"
    if 2 * args.warmup_users < args.profile_events:
        p.error("--warmup-users must be at least half of --profile-events")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.apply",
                          *(sys.argv[1:] if argv is None else argv)])
    if args.direction == "downstream":
        from bench import apply_downstream

        return apply_downstream.main(args, command)
    tuning = Tuning(worker_concurrency=args.workers or args.concurrency,
                    authing_max_concurrency=args.concurrency)

    def write(run: Measured) -> list[Verdict]:
        report.splice(args.output, report.render(
            run.phases, run.bounds, command=command, machine=run.machine,
            settings=settings_lines(args, tuning, args.db_kind), wall_seconds=run.wall(),
            notes=notes_lines(run.phases, run.peaks)))
        by_name = {p.name: p for p in run.phases}
        return report.verdicts(by_name["fixed-rate"], by_name["throughput"],
                               by_name["no-op"])

    return run_measured(args, tuning, measure, write, "apply")


@dataclass(frozen=True, slots=True)
class Measured:
    """One direction's phases and what the report needs beside them."""

    phases: list[Phase]
    peaks: dict[str, int]
    bounds: Bounds
    machine: list[str]
    started: float

    def wall(self) -> float:
        return time.time() - self.started


def run_measured(args: argparse.Namespace, tuning: Tuning,
                 measure: Callable[[argparse.Namespace, Tuning],
                                   tuple[list[Phase], dict[str, int]]],
                 write: Callable[[Measured], list[Verdict]], section: str) -> int:
    """Wait for a quiet machine, measure, let ``write`` splice its section and judge it,
    print the verdicts. Exit 0 when all are met, 2 when one is not, 1 when the run failed."""
    started = time.time()
    busy = wait_for_quiet(args.quiet_wait)
    print(f"machine busy before start: {100 * busy:.0f}% of all cores", flush=True)
    try:
        phases, peaks = measure(args, tuning)
    except (RuntimeError, OSError, httpx.HTTPError, psycopg.Error) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    bounds = Bounds(args.latency_ms, tuning.worker_concurrency,
                    tuning.authing_max_concurrency, tuning.wecom_max_concurrency,
                    tuning.wecom_rate_per_minute)
    version = pg_version(args.database) if args.db_kind == "postgresql" else "not used"
    machine = [*machine_lines(version),
               f"- Machine busy before start: {100 * busy:.0f}% of all cores"]
    checks = write(Measured(phases, peaks, bounds, machine, started))
    print(report.summary_table(phases, bounds))
    for v in checks:
        print(f"{'MET' if v.met else 'NOT MET'}: {v.target}: {v.measured}")
    print(f"wrote the {section} section of {args.output} in {time.time() - started:.0f} s")
    return 0 if all(v.met for v in checks) else 2


def measure(args: argparse.Namespace, tuning: Tuning) -> tuple[list[Phase], dict[str, int]]:
    deadline = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        workdir = Path(tmp)
        with fresh_database(args.db_kind, workdir, args.database) as db:
            assert db is not None
            with running_stack(keys=new_keys(), db=db, tuning=tuning,
                               latency_ms=args.latency_ms, workdir=workdir) as stack:
                phases = _with_log_on_error(stack, lambda: run_phases(Driver(stack, deadline),
                                                                      args))
                return phases, stack.sims.peak_concurrency()


def _with_log_on_error(stack: Stack, body: Callable[[], list[Phase]]) -> list[Phase]:
    """The service's log is in a temporary directory: show its tail before it goes."""
    try:
        return body()
    except Exception:
        print("service log tail:\n" + stack.processes["receiver"].log_tail(30),
              file=sys.stderr)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
