"""Ingest benchmark: how many signed WeCom callbacks/s ``wecom-sync serve`` stores durably.

One command, from the repository root::

    python -m bench.ingest        # or: python bench/ingest.py

For each target (a storage-free baseline app, ``wecom-sync serve`` on SQLite, and on
PostgreSQL) it starts the server as its own process, runs load generator processes
(``bench.loadgen``) through a warm-up, a closed-loop max-throughput phase and an open-loop
fixed-rate phase, checks that the inbox holds exactly the accepted events, and writes
``bench/RESULTS.md``. Everything it starts is stopped again, also on error.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shlex
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as ``python bench/ingest.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg

from bench import report
from bench.procs import ROOT, Process, Server, free_port, run_loadgens, wait_for_quiet
from bench.report import TargetResult

TARGETS = ("baseline", "sqlite", "postgresql")


@dataclass(frozen=True)
class Keys:
    corp_id: str
    token: str
    aes_key: str

    def env(self) -> dict[str, str]:
        return {"WECOM_SYNC_WECOM_CORP_ID": self.corp_id,
                "WECOM_SYNC_WECOM_CALLBACK_TOKEN": self.token,
                "WECOM_SYNC_WECOM_ENCODING_AES_KEY": self.aes_key}


def new_keys() -> Keys:
    """Fresh throwaway credentials; the EncodingAESKey must be 43 alphanumerics."""
    while True:
        aes_key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:43]
        if aes_key.isalnum():
            break
    return Keys(corp_id=f"wwbench{secrets.token_hex(4)}", token=secrets.token_hex(8),
                aes_key=aes_key)


# -- databases ---------------------------------------------------------------------------


@dataclass
class Database:
    """Where a target stores events, and how to count what it stored."""

    url: str
    kind: str
    pg_dsn: str = ""
    schema: str = ""

    def count_inbox(self) -> int:
        query = "SELECT count(*) FROM inbox_events"
        if self.kind == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as conn:
                return int(conn.execute(query).fetchone()[0])
        with psycopg.connect(self.pg_dsn) as conn:
            row = conn.execute(f'SELECT count(*) FROM "{self.schema}".inbox_events').fetchone()
            return int(row[0]) if row else 0


@contextmanager
def fresh_database(kind: str, workdir: Path, pg_dsn: str) -> Iterator[Database | None]:
    """An empty SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if kind == "baseline":
        yield None
    elif kind == "sqlite":
        yield Database(url=f"sqlite:///{workdir / 'bench.db'}", kind=kind)
    else:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield Database(url=f"{pg_dsn}?options=-csearch_path%3D{schema}", kind=kind,
                           pg_dsn=pg_dsn, schema=schema)
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- one target ----------------------------------------------------------------------------


def server_command(kind: str) -> list[str]:
    if kind == "baseline":
        return [sys.executable, "-m", "bench.baseline_app"]
    script = Path(sys.executable).with_name("wecom-sync")
    exe = str(script) if script.exists() else shutil.which("wecom-sync")
    if not exe:
        raise SystemExit("wecom-sync console script not found; pip install -e . first")
    # --no-worker: measure the receive path; no Authing is configured for a worker to call.
    return [exe, "serve", "--no-worker"]


def server_env(args: argparse.Namespace, keys: Keys, port: int, db: Database | None
               ) -> dict[str, str]:
    """A clean ``WECOM_SYNC_*`` environment: nothing leaks in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    env.update(keys.env())
    env.update({"WECOM_SYNC_HOST": "127.0.0.1", "WECOM_SYNC_PORT": str(port),
                "WECOM_SYNC_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    if db is not None:
        env["WECOM_SYNC_DATABASE_URL"] = db.url
    if args.batch_max is not None:
        env["WECOM_SYNC_INBOX_BATCH_MAX"] = str(args.batch_max)
    if args.linger_ms is not None:
        env["WECOM_SYNC_INBOX_BATCH_LINGER_MS"] = str(args.linger_ms)
    return env


def bench_target(kind: str, args: argparse.Namespace, keys: Keys) -> TargetResult:
    """Start the server, run warm-up, max-throughput and fixed-rate phases, verify rows."""
    busy = wait_for_quiet(args.quiet_wait)
    print(f"[{kind}] machine busy before start: {100 * busy:.0f}% of all cores", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        workdir = Path(tmp)
        with fresh_database(kind, workdir, args.pg_dsn) as db:
            port = free_port()
            env = server_env(args, keys, port, db)
            proc = Process(server_command(kind), env=env, cwd=workdir,
                           log=workdir / "server.log")
            with Server(proc, f"http://127.0.0.1:{port}") as server:
                result = run_phases(kind, server, args, env, workdir)
                if db is not None:
                    result.inbox_rows = db.count_inbox()
            result.busy_before = busy
            return result


def run_phases(kind: str, server: Server, args: argparse.Namespace, env: dict[str, str],
               workdir: Path) -> TargetResult:
    run = uuid.uuid4().hex[:6]
    common = {"server": server, "env": env, "workdir": workdir,
              "loadgens": args.loadgens, "concurrency": args.concurrency,
              "client": args.client}
    print(f"[{kind}] warm-up: {args.warmup} events", flush=True)
    warmup = run_loadgens(tag=f"{run}-w", count=args.warmup, duration=args.duration,
                          rate=0.0, **common)
    print(f"[{kind}] max throughput: up to {args.max_events} events or {args.duration:g} s",
          flush=True)
    peak = run_loadgens(tag=f"{run}-m", count=args.max_events, duration=args.duration,
                        rate=0.0, **common)
    print(f"[{kind}]   {report.describe(peak)}", flush=True)
    count = int(args.rate * args.rate_duration)
    print(f"[{kind}] fixed rate: {args.rate:g}/s for {args.rate_duration:g} s", flush=True)
    fixed = run_loadgens(tag=f"{run}-r", count=count, duration=args.rate_duration,
                         rate=args.rate, **common)
    print(f"[{kind}]   {report.describe(fixed)}", flush=True)
    return TargetResult(kind=kind, warmup=warmup, peak=peak, fixed=fixed)


# -- entry point -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="wecom-sync ingest benchmark",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma list from: " + ", ".join(TARGETS))
    p.add_argument("--duration", type=float, default=10.0, help="max-throughput phase cap, s")
    p.add_argument("--max-events", type=int, default=40000,
                   help="max-throughput phase: events pre-built (split over loadgens)")
    p.add_argument("--rate", type=float, default=500.0, help="fixed-rate phase: events/s")
    p.add_argument("--rate-duration", type=float, default=10.0, help="fixed-rate phase, s")
    p.add_argument("--warmup", type=int, default=1000, help="warm-up events (not reported)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="open connections in total, split over loadgens")
    p.add_argument("--loadgens", type=int, default=2, help="load generator processes")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw",
                   help="loadgen HTTP client (see bench/README.md)")
    p.add_argument("--batch-max", type=int, default=None,
                   help="WECOM_SYNC_INBOX_BATCH_MAX for the server (default: product's)")
    p.add_argument("--linger-ms", type=float, default=None,
                   help="WECOM_SYNC_INBOX_BATCH_LINGER_MS for the server (default: product's)")
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="before each target, wait up to this long for other load to stop, s")
    p.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md",
                   help="Markdown report to (over)write")
    args = p.parse_args(argv)
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.target_list) - set(TARGETS)
    if unknown or not args.target_list:
        p.error(f"unknown target(s): {', '.join(sorted(unknown)) or '(none)'}")
    return args


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops its processes and schema."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    command = shlex.join(["python", "-m", "bench.ingest",
                          *(sys.argv[1:] if argv is None else argv)])
    started = time.time()
    keys = new_keys()
    results: list[TargetResult] = []
    for kind in args.target_list:
        try:
            results.append(bench_target(kind, args, keys))
        except (RuntimeError, OSError, httpx.HTTPError, psycopg.Error) as exc:
            print(f"[{kind}] FAILED: {exc}", file=sys.stderr, flush=True)
            results.append(TargetResult(kind=kind, failure=f"{type(exc).__name__}: {exc}"))
    text = report.render(results, args, command, pg_version(args.pg_dsn),
                         time.time() - started)
    report.splice(args.output, text)
    print(report.summary_table(results))
    print(f"wrote {args.output} in {time.time() - started:.0f} s")
    return 0 if all(r.failure is None for r in results) else 1


def pg_version(dsn: str) -> str:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except psycopg.Error as exc:
        return f"unreachable ({type(exc).__name__})"


if __name__ == "__main__":
    raise SystemExit(main())
