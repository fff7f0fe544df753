"""Reconcile benchmark: a no-op full run at 10^5 users, and an initial sync at 20 ms a call.

    python -m bench.reconcile            # the recorded run, ~5 minutes
    python -m bench.reconcile --quick    # a small smoke run

Part 1 (no-op): the WeCom simulator holds ``--users``/``--departments``; Authing is seeded
with exactly what the product's planner would create for them (``reconcile_run prepare``),
so a full reconcile must plan and write nothing. Measured: the run's wall time by phase and
peak RSS, in its own process; baseline: the same pages fetched by a bare httpx client.

Part 2 (initial sync): ``--sync-users``/``--sync-departments`` into an empty pool, both
simulators answering after ``--latency-ms``, ``--concurrency`` calls at a time. Measured:
wall time and calls per endpoint; baseline: minimum calls × latency / concurrency. Then a
second run at 0 ms must plan no writes (the batch-created users really are in step).

Only the part of ``bench/RESULTS.md`` between the reconcile markers is replaced. Exit
status: 0 targets met, 2 a target missed, 1 the run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import ROOT, Process
from bench.reconcile_report import Report, machine, write_section


class Sims:
    """The two simulators, each its own process (``bench.reconcile_sims``)."""

    def __init__(self, workdir: Path, tag: str, users: int, departments: int, seed: int,
                 latency_ms: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
        common = [sys.executable, "-m", "bench.reconcile_sims"]
        self.procs = [
            Process([*common, "wecom", "--users", str(users), "--departments",
                     str(departments), "--seed", str(seed), "--latency-ms", str(latency_ms)],
                    env=env, cwd=ROOT, log=workdir / f"{tag}-wecom.log", pipes=True),
            Process([*common, "authing", "--latency-ms", str(latency_ms)],
                    env=env, cwd=ROOT, log=workdir / f"{tag}-authing.log", pipes=True)]
        self.http = httpx.Client(timeout=600)
        self.wecom = self.authing = ""

    def __enter__(self) -> Sims:
        try:
            for proc in self.procs:
                proc.start()
            deadline = time.monotonic() + 300
            self.wecom, self.authing = (proc.read_line(deadline).split()[1]
                                        for proc in self.procs)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        for proc in self.procs:
            proc.stop(grace=3.0)

    def cpu_seconds(self) -> dict[str, float]:
        return {"wecom": self.procs[0].cpu_seconds(), "authing": self.procs[1].cpu_seconds()}

    def seed_authing(self, path: Path) -> dict[str, Any]:
        reply = self.http.post(f"{self.authing}/_bench/seed", json={"path": str(path)})
        reply.raise_for_status()
        return reply.json()  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        self.http.delete(f"{self.wecom}/_admin/stats").raise_for_status()
        self.http.post(f"{self.authing}/_admin/stats/reset").raise_for_status()

    def stats(self) -> dict[str, dict[str, dict[str, int]]]:
        wecom = self.http.get(f"{self.wecom}/_admin/stats").json()
        authing = self.http.get(f"{self.authing}/_admin/stats").json()["data"]
        return {"wecom": {"reads": wecom["reads"], "writes": wecom["writes"]},
                "authing": {"reads": authing["reads"], "writes": authing["writes"]}}

    def set_latency(self, ms: float) -> None:
        self.http.put(f"{self.wecom}/_admin/settings", json={"latency_ms": ms}
                      ).raise_for_status()
        self.http.post(f"{self.authing}/_admin/latency", json={"ms": ms}).raise_for_status()


def child(job: str, sims: Sims, workdir: Path, tag: str, args: argparse.Namespace,
          *extra: str) -> dict[str, Any]:
    """One ``bench.reconcile_run`` job in its own process; its JSON result, with the
    simulators' CPU seconds over the same interval."""
    out = workdir / f"{tag}.json"
    argv = [sys.executable, "-m", "bench.reconcile_run", job, "--wecom", sims.wecom,
            "--authing", sims.authing, "--db", str(workdir / f"{tag}.db"), "--out", str(out),
            "--concurrency", str(args.concurrency), "--wecom-rate", args.wecom_rate, *extra]
    if args.profile and job == "run":
        argv += ["--profile", str(workdir / f"{tag}.prof")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    before = sims.cpu_seconds()
    proc = Process(argv, env=env, cwd=ROOT, log=workdir / f"{tag}.log").start()
    try:
        assert proc.popen is not None
        code = proc.popen.wait(timeout=args.max_seconds)
    finally:
        proc.stop()
    if code != 0:
        raise RuntimeError(f"{job} ({tag}) exited {code}; log:\n{proc.log_tail(30)}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    after = sims.cpu_seconds()
    result["sim_cpu"] = {k: after[k] - before[k] for k in after}
    return result


def noop_part(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    with Sims(workdir, "noop", args.users, args.departments, args.seed, 0.0) as sims:
        started = time.perf_counter()
        prepared = child("prepare", sims, workdir, "noop-prepare", args,
                         "--seed-out", str(workdir / "seed.json"))
        seeded = sims.seed_authing(workdir / "seed.json")
        report.seeding = {**prepared, "seed_seconds": seeded["seconds"],
                          "wall": time.perf_counter() - started}
        sims.reset_stats()
        report.baseline = child("baseline", sims, workdir, "noop-baseline", args)
        report.baseline["calls"] = sims.stats()
        sims.reset_stats()
        report.noop = child("run", sims, workdir, "noop-run", args, "--mode", "full")
        report.noop["calls"] = sims.stats()


def initial_part(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    with Sims(workdir, "sync", args.sync_users, args.sync_departments, args.seed,
              args.latency_ms) as sims:
        sims.reset_stats()
        report.initial = child("run", sims, workdir, "sync-run", args,
                               "--mode", "create_update")
        report.initial["calls"] = sims.stats()
        sims.set_latency(0.0)
        sims.reset_stats()
        report.recheck = child("run", sims, workdir, "sync-recheck", args, "--mode", "full")
        report.recheck["calls"] = sims.stats()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.reconcile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=5_000)
    parser.add_argument("--sync-users", type=int, default=10_000)
    parser.add_argument("--sync-departments", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="WECOM_ and AUTHING_MAX_CONCURRENCY of the runs")
    parser.add_argument("--wecom-rate", default="off",
                        help="client-side WeCom pacing per minute for the runs, or off "
                             "(see bench/README.md)")
    parser.add_argument("--seed", type=int, default=7, help="directory generator seed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2000 users/100 departments, 500/50 for the sync")
    parser.add_argument("--skip", choices=["noop", "initial"], help="leave one part out")
    parser.add_argument("--profile", action="store_true",
                        help="also write cProfile stats of each run into the work directory")
    parser.add_argument("--max-seconds", type=float, default=600, help="per child job")
    parser.add_argument("--workdir", type=Path, help="keep logs and results here")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.users, args.departments = 2_000, 100
        args.sync_users, args.sync_departments = 500, 50
    command = shlex.join(["python", "-m", "bench.reconcile", *sys.argv[1:]])
    report = Report(args=vars(args), command=command, machine=machine())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if args.skip != "noop":
                noop_part(args, workdir, report)
            if args.skip != "initial":
                initial_part(args, workdir, report)
        except Exception as exc:  # noqa: BLE001 - say what failed, keep the exit status
            print(f"bench.reconcile failed: {exc}", file=sys.stderr)
            return 1
    report.seconds = time.perf_counter() - started
    text = report.render()
    write_section(args.output, text)
    print(text)
    return 0 if report.all_met() else 2


if __name__ == "__main__":
    sys.exit(main())

