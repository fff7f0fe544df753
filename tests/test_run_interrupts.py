"""A run must never be left ``running`` by its own process ending, and scheduled reconciles
run in exactly one process whatever the layout.

End to end as an operator meets it: ``wecom-sync reconcile``, ``serve`` and ``worker`` as
real processes against the simulators and a real database (SQLite and PostgreSQL), stopped
with the signals a terminal or a container runtime sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import select

from simulators.authing.app import AuthingSimulator
from simulators.generate import generate_directory
from simulators.server import free_port
from simulators.wecom.app import WeComSimulator
from sync_core.store import leases, migrate, runs
from sync_core.store.db import make_engine
from sync_core.store.models import Run

from .e2e_stack import eventually

REPO = Path(__file__).resolve().parents[1]
ORG = "wecom"
OPS = {"Authorization": "Bearer ops-test-token"}


# -- a deployment of real processes --------------------------------------------------------

@dataclass
class Sims:
    wecom: WeComSimulator
    authing: AuthingSimulator
    db_url: str
    department_ids: set[str]

    @property
    def departments(self) -> int:
        return len(self.department_ids)

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
        return {**clean, "PYTHONPATH": str(REPO),
                "WECOM_SYNC_DATABASE_URL": self.db_url,
                "WECOM_SYNC_WECOM_CORP_ID": "wwsignals",
                "WECOM_SYNC_WECOM_CONTACT_SECRET": "contact-sync-secret",
                "WECOM_SYNC_WECOM_API_BASE": self.wecom.url,
                "WECOM_SYNC_AUTHING_API_BASE": self.authing.url,
                "WECOM_SYNC_AUTHING_ACCESS_KEY_ID": "signals-pool",
                "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET": "pool-s3cret",
                # One Authing call at a time: with latency, a run takes seconds.
                "WECOM_SYNC_AUTHING_MAX_CONCURRENCY": "1",
                "WECOM_SYNC_OPS_TOKEN": "ops-test-token",
                "WECOM_SYNC_UPSTREAM_RECONCILE_CRON": "",
                "WECOM_SYNC_DOWNSTREAM_RECONCILE_CRON": "",
                **extra}

    def authing_departments(self) -> set[str]:
        """The openDepartmentIds (WeCom ids) that exist in our Authing organization."""
        with self.authing.state.lock:
            return {d.open_department_id for d in self.authing.state.departments.values()
                    if d.org_code == ORG and d.open_department_id}

    def slow(self, ms: float) -> None:
        self.authing.admin.set_latency(ms)


@contextmanager
def simulators(db_url: str, *, departments: int = 30, users: int = 10) -> Iterator[Sims]:
    directory = generate_directory(users=users, departments=departments, seed=11,
                                   max_depth=3)
    with WeComSimulator(corp_id="wwsignals") as wecom, \
            AuthingSimulator(userpool_id="signals-pool", secret="pool-s3cret") as authing:
        wecom.admin.load(directory.departments, directory.users)
        yield Sims(wecom, authing, db_url, {str(d["id"]) for d in directory.departments})


@dataclass
class Proc:
    """One ``python -m receiver.cli ...`` process; output goes to files (a full pipe
    nobody reads would freeze it)."""

    args: list[str]
    env: dict[str, str]
    preexec: Callable[[], None] | None = None
    out: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile(mode="w+"))  # noqa: SIM115
    err: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile(mode="w+"))  # noqa: SIM115

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "receiver.cli", *self.args], cwd=REPO, env=self.env,
            stdout=self.out, stderr=self.err, text=True, preexec_fn=self.preexec)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        """The exit code; a process still alive after ``timeout`` fails the test."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.args[0]} did not exit after the signal: "
                                 f"{self.stderr()[-2000:]}") from None

    def stdout(self) -> str:
        self.out.seek(0)
        return self.out.read()

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def processes(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            assert "Traceback" not in proc.stderr(), proc.stderr()[-3000:]
            assert "pool-s3cret" not in proc.stdout() + proc.stderr()


def all_runs(db_url: str) -> list[dict[str, Any]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [{**runs.as_json(r, runs.items(conn, r["id"])),
                     "lease_owner": r["lease_owner"]}
                    for r in reversed(runs.recent(conn, limit=100))]
    finally:
        engine.dispose()


def reconcile(sims: Sims, *extra: str, preexec: Callable[[], None] | None = None) -> Proc:
    return Proc(["reconcile", "--json", *extra], sims.env(), preexec)


def assert_interrupted(run: dict[str, Any], signame: str, sims: Sims) -> None:
    """Ended at once, says why, released its lease, and its items say what was applied."""
    assert run["status"] in ("failed", "partial"), run
    assert f"interrupted by {signame}" in (run["error"] or ""), run["error"]
    assert run["finished_at"] is not None and run["lease_owner"] is None
    applied = [i for i in run["items"] if i["status"] == "applied"]
    assert applied, "the departments created before the signal are recorded"
    assert run["status"] == "partial"
    created = [i for i in applied if i["action"] == "create"]
    assert run["counters"]["created"] == len(created) > 0
    in_authing = sims.authing_departments()
    for item in applied:
        if item["kind"] == "department" and item["action"] == "create":
            assert item["key"] in in_authing, item
    # Whatever Authing got is recorded: applied, or failed as cut off in flight.
    recorded = {i["key"] for i in run["items"] if i["kind"] == "department"
                and i["status"] in ("applied", "failed")}
    assert in_authing - {"1"} <= recorded | {i["key"] for i in run["items"]
                                             if i["action"] == "unchanged"}
    assert len(created) < sims.departments - 1, "the signal came while it was running"


def applying(sims: Sims, proc: Proc, count: int = 3) -> None:
    """Until the run has created ``count`` departments in Authing (it is mid-apply)."""
    eventually(lambda: len(sims.authing_departments()) >= count, 60,
               lambda: proc.stderr()[-3000:])


# -- wecom-sync reconcile, stopped by Ctrl-C or SIGTERM --------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_at_once_recording_what_it_applied(
        db_url: str, sig: signal.Signals, caplog: pytest.LogCaptureFixture) -> None:
    with simulators(db_url) as sims:
        sims.slow(150)
        with processes(reconcile(sims)) as (proc,):
            applying(sims, proc)
            proc.signal(sig)
            assert proc.wait() == 128 + sig
            assert f"interrupted by {sig.name}" in proc.stderr()
            printed = json.loads(proc.stdout())
        [run] = all_runs(db_url)
        assert printed["id"] == run["id"] and printed["status"] == run["status"]
        assert_interrupted(run, sig.name, sims)

        # The lease is released: a new run starts at once (no 409) and completes the job.
        sims.slow(0)
        with processes(reconcile(sims)) as (again,):
            assert again.wait() == 0, again.stderr()
        second = all_runs(db_url)[-1]
        assert second["status"] == "succeeded"
        assert sims.authing_departments() == sims.department_ids
    # A request cut off by the signal is the caller going away, not a simulator bug.
    assert not [r for r in caplog.records if r.name.startswith("simulators")
                and r.levelno >= logging.ERROR], caplog.text


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_reconcile_stops_on_sigterm_like_pid_1(sqlite_url: str) -> None:
    """PID 1 in a container has no default action for SIGTERM: without a handler of its
    own the signal does nothing. A process started with SIGTERM ignored is in the same
    position; the product must still stop, so it must install its own handler."""
    with simulators(sqlite_url) as sims:
        sims.slow(150)
        with processes(reconcile(sims, preexec=_ignore_sigterm)) as (proc,):
            applying(sims, proc)
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 128 + signal.SIGTERM
        [run] = all_runs(sqlite_url)
        assert_interrupted(run, "SIGTERM", sims)


# -- serve and worker, stopped while a run is in progress ------------------------------------

@pytest.mark.parametrize("worker", [True, False], ids=["serve", "serve-no-worker"])
def test_stopping_serve_ends_a_run_started_through_the_ops_api(db_url: str,
                                                                worker: bool) -> None:
    with simulators(db_url) as sims:
        port = free_port()
        serve = Proc(["serve", "--host", "127.0.0.1", "--port", str(port),
                      *([] if worker else ["--no-worker"])], sims.env())
        with processes(serve):
            url = f"http://127.0.0.1:{port}"
            eventually(lambda: _ready(url), 60, serve.stderr)
            sims.slow(150)
            reply = httpx.post(f"{url}/ops/reconcile", headers=OPS, json={})
            assert reply.status_code == 202, reply.text
            applying(sims, serve)
            serve.signal(signal.SIGTERM)
            serve.wait()
        [run] = all_runs(db_url)
        assert_interrupted(run, "SIGTERM", sims)
        sims.slow(0)
        with processes(reconcile(sims)) as (again,):
            assert again.wait() == 0, again.stderr()


def test_stopping_a_worker_ends_the_scheduled_run_it_was_executing(db_url: str) -> None:
    with simulators(db_url) as sims:
        _missed_firing(db_url)
        sims.slow(150)
        worker = Proc(["worker"], sims.env(WECOM_SYNC_UPSTREAM_RECONCILE_CRON="0 0 1 1 *"))
        with processes(worker):
            applying(sims, worker)
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0
        run = all_runs(db_url)[-1]
        assert run["trigger"] == "schedule"
        assert_interrupted(run, "SIGTERM", sims)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# -- scheduled reconciles: exactly one process fires, whatever the layout ---------------------

def _missed_firing(db_url: str) -> None:
    """A scheduled run of last year: this year's firing of ``0 0 1 1 *`` is due now, so
    the leader starts one run on its first tick."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        then = datetime.now(UTC) - timedelta(days=400)
        with engine.begin() as conn:
            run_id = runs.create(conn, direction="upstream", mode="create_update",
                                 source="api", dry_run=False, trigger="schedule",
                                 owner="old", now=then, lease=timedelta(minutes=5))
            runs.finish(conn, run_id=run_id, status="succeeded", counters={}, now=then)
    finally:
        engine.dispose()


def _lease_holder(db_url: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return leases.holder(conn, name="scheduler", now=datetime.now(UTC))
    finally:
        engine.dispose()


def _scheduled_runs(db_url: str) -> list[dict[str, Any]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            table = Run.__table__  # type: ignore[attr-defined]
            rows = conn.execute(select(table).where(table.c.trigger == "schedule",
                                                    table.c.id != 1))  # 1: the missed one
            return [dict(r) for r in rows.mappings()]
    finally:
        engine.dispose()


LAYOUTS = {
    "serve": ["serve"],
    "serve-no-worker+worker": ["serve --no-worker", "worker"],
    "serve-no-worker+2-workers": ["serve --no-worker", "worker", "worker"],
    "2-serves": ["serve", "serve"],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_scheduled_reconciles_run_in_exactly_one_process(db_url: str, layout: str) -> None:
    with simulators(db_url, departments=4, users=6) as sims:
        _missed_firing(db_url)
        env = sims.env(WECOM_SYNC_UPSTREAM_RECONCILE_CRON="0 0 1 1 *")
        procs = []
        for command in LAYOUTS[layout]:
            args = command.split()
            if args[0] == "serve":
                args += ["--host", "127.0.0.1", "--port", str(free_port())]
            procs.append(Proc(args, env))
        with processes(*procs):
            runs_ = eventually(lambda: [r for r in _scheduled_runs(db_url)
                                        if r["status"] not in ("queued", "running")], 90,
                               lambda: procs[-1].stderr()[-2000:])
            assert len(runs_) == 1 and runs_[0]["status"] == "succeeded", runs_
            holder = _lease_holder(db_url)
            assert holder is not None
            leader = [p for p in procs if f":{p.pid}:" in holder]
            assert len(leader) == 1, (holder, [p.pid for p in procs])
            # Only processes that run the worker take part; a receiver never leads.
            assert "--no-worker" not in leader[0].args
            # A stopped leader hands over: the lease is released at once.
            leader[0].signal(signal.SIGTERM)
            assert leader[0].wait() in (0, -signal.SIGTERM)  # serve: uvicorn re-raises it
            if len(procs) > 1:
                assert _lease_holder(db_url) != holder
        assert len(_scheduled_runs(db_url)) == 1


# -- found on the way: a scheduled run at start-up raced the worker's bootstrap ---------------

async def test_bootstraps_side_by_side_share_one_organization(sqlite_url: str) -> None:
    """The worker and a scheduled run of one process, and other processes, bootstrap at
    start-up together: all must succeed, on the one organization that gets created."""
    from sync_core.metrics import Metrics
    from sync_core.runtime import build_runtime

    from .conftest import make_settings

    with simulators(sqlite_url, departments=2, users=1) as sims:
        settings = make_settings(sqlite_url, None, **{
            k.removeprefix("WECOM_SYNC_").lower(): v for k, v in sims.env().items()
            if k.startswith("WECOM_SYNC_") and k != "WECOM_SYNC_DATABASE_URL"})
        sims.slow(50)
        engine = make_engine(sqlite_url)
        here, there = (build_runtime(settings, engine, Metrics()) for _ in range(2))
        try:
            await asyncio.gather(here.sync.prepare(), here.sync.prepare(),
                                 there.sync.prepare())
            root = here.sync.binding.root_department_id
            assert root and there.sync.binding.root_department_id == root
        finally:
            await here.aclose()
            await there.aclose()
            engine.dispose()
        assert sims.authing.state.counts()["organizations"] == 1


# -- a failure in the run's own bookkeeping still ends it ------------------------------------

@pytest.mark.parametrize("step", ["start", "add_items"])
def test_a_failing_bookkeeping_step_still_ends_the_run(
        db_url: str, keys: Any, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """The database refuses one write of the run's own record (marking it running, or
    storing its items): the run must still end, failed and saying why, not stay active."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from .e2e_stack import running_stack

    real = getattr(runs, step)
    failures = [OperationalError("INSERT ...", {}, sqlite3.OperationalError("disk I/O error"))]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    with running_stack(db_url, keys) as s:
        directory = generate_directory(users=5, departments=2, seed=3, max_depth=2)
        s.wecom.admin.load(directory.departments, directory.users)
        monkeypatch.setattr(runs, step, flaky)
        reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json={})
        assert reply.status_code == 202, reply.text
        run_id = reply.json()["run_id"]

        def ended() -> dict[str, Any] | None:
            run = httpx.get(f"{s.url}/ops/runs/{run_id}", headers=OPS).json()
            return run if run["status"] not in ("queued", "running") else None

        run = eventually(ended, 30)
        assert run["status"] == "failed" and "OperationalError" in run["error"], run
        assert "INSERT" not in run["error"]  # the driver's message, not the SQL
        again = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json={})
        assert again.status_code == 202, again.text


def test_stopping_the_service_ends_an_approval_in_progress(db_url: str, keys: Any) -> None:
    """``serve`` stops while it applies the deletes an operator approved: the run records
    the deletes done and the ones not done, and ends at once."""
    from .e2e_stack import running_stack

    with running_stack(db_url, keys, delete_threshold_count=3) as s:
        directory = generate_directory(users=16, departments=3, seed=3, max_depth=2)
        s.wecom.admin.load(directory.departments, directory.users)

        def start(body: dict[str, Any]) -> dict[str, Any]:
            reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json=body)
            assert reply.status_code == 202, reply.text
            run_id = reply.json()["run_id"]
            return eventually(lambda: (lambda r: r if r["status"] not in (
                "queued", "running") else None)(httpx.get(
                    f"{s.url}/ops/runs/{run_id}", headers=OPS).json()), 60)

        assert start({})["status"] == "succeeded"
        gone = [u["userid"] for u in directory.users[:10]]
        s.wecom.pusher.drop_next(len(gone))  # the callbacks are lost
        s.wecom.admin.delete_users(gone)
        s.wecom.pusher.flush()
        blocked = start({"mode": "full"})
        assert blocked["status"] == "blocked", blocked
        s.authing.admin.set_latency(200)
        reply = httpx.post(f"{s.url}/ops/runs/{blocked['id']}/approve", headers=OPS)
        assert reply.status_code == 202
        eventually(lambda: sum(1 for u in gone if (s.user(u) or {}).get("status")
                               == "Resigned") >= 2, 60)
    # The service has stopped.
    run = next(r for r in all_runs(db_url) if r["id"] == blocked["id"])
    assert run["status"] == "partial" and "interrupted" in run["error"], run
    assert run["lease_owner"] is None and run["finished_at"] is not None
    resigned = {u for u in gone if (s.user(u) or {}).get("status") == "Resigned"}
    applied = {i["key"] for i in run["items"] if i["status"] == "applied"
               and i["action"] != "unchanged"}
    assert applied and applied <= resigned
    left = [i for i in run["items"] if i["key"] in set(gone) - resigned]
    assert left and all(i["status"] == "skipped" for i in left), left
    assert not [i for i in run["items"] if i["status"] == "staged"]
    assert run["counters"]["deleted"] == len(applied)
