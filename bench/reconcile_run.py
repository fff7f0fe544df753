"""The measured side of the reconcile benchmark, one job per process (honest peak RSS).

    python -m bench.reconcile_run run --wecom URL --authing URL --db PATH --out F.json
    python -m bench.reconcile_run prepare ... --seed-out seed.json
    python -m bench.reconcile_run baseline ... --out F.json

``run`` executes one reconcile exactly as ``wecom-sync reconcile`` does (Reconciler.create
then execute, same runtime, same SQLite run log) and times its phases by wrapping the
reconciler's own steps: read WeCom, read Authing, plan, apply, record (run items written).
``prepare`` plans against the empty Authing pool and writes the planned requests as a seed
file (``bench.reconcile_sims`` loads it), so Authing starts exactly as a first run would
leave it. ``baseline`` pages through the same endpoints with a bare httpx client, the
same concurrency and no models or planning: the floor the read could reach.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bench.reconcile_sims import CONTACT_SECRET, CORP_ID, ORGANIZATION, POOL_SECRET, REF, USERPOOL
from sync_core.directory.operations import Action, DepartmentRef, Operation

NO_PACING = 1e9  # per minute: the client-side WeCom pacing lifted (see bench/README.md)


def _settings(args: argparse.Namespace) -> Any:
    from sync_core.settings import Settings

    values: dict[str, Any] = {
        "database_url": f"sqlite:///{args.db}", "wecom_corp_id": CORP_ID,
        "wecom_contact_secret": CONTACT_SECRET, "wecom_api_base": args.wecom,
        "authing_api_base": args.authing, "authing_access_key_id": USERPOOL,
        "authing_access_key_secret": POOL_SECRET, "authing_organization_code": ORGANIZATION,
        "wecom_max_concurrency": args.concurrency,
        "authing_max_concurrency": args.concurrency, "log_level": "WARNING"}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    # The setting is capped at WeCom's documented 10,000/min per API; "off" lifts the
    # client's pacing (model_copy does not validate) to measure our own cost.
    rate = NO_PACING if args.wecom_rate == "off" else float(args.wecom_rate)
    return settings.model_copy(update={"wecom_rate_per_minute": rate})


class Phases:
    """Wall and CPU seconds of wrapped steps, by name (a step run twice adds up)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def _add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def wrap_async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - wall, time.process_time() - cpu)
        return timed

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - wall, time.process_time() - cpu)
        return timed


def _instrument(phases: Phases, planned: list[Operation]) -> None:
    from sync_core.authing.target import AuthingTarget
    from sync_core.authing.upstream import UpstreamPlanner
    from sync_core.engine import reconciler
    from sync_core.wecom.source import WeComSource

    WeComSource.snapshot = phases.wrap_async(  # type: ignore[method-assign]
        "read_wecom", WeComSource.snapshot)
    AuthingTarget.snapshot = phases.wrap_async(  # type: ignore[method-assign]
        "read_authing", AuthingTarget.snapshot)
    plan = phases.wrap("plan", UpstreamPlanner.plan_all)

    def plan_and_keep(*args: Any, **kwargs: Any) -> Any:
        ops = plan(*args, **kwargs)
        planned.extend(ops)
        return ops

    UpstreamPlanner.plan_all = plan_and_keep  # type: ignore[method-assign]
    cls = reconciler.Reconciler
    cls._apply = phases.wrap_async("apply", cls._apply)  # type: ignore[method-assign]
    cls._finish = phases.wrap("record", cls._finish)  # type: ignore[method-assign]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from sync_core.authing.planner import Mode
    from sync_core.engine.reconciler import RunRequest
    from sync_core.metrics import Metrics
    from sync_core.runtime import build_runtime
    from sync_core.store import migrate, runs
    from sync_core.store.db import make_engine

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    await asyncio.to_thread(migrate.upgrade, engine)
    phases, planned = Phases(), list[Operation]()
    _instrument(phases, planned)
    runtime = build_runtime(settings, engine, Metrics())
    request = RunRequest(mode=Mode(args.mode), trigger="bench")
    rss_before = _max_rss_mib()
    profile = cProfile.Profile() if args.profile else None
    try:
        run_id = await asyncio.to_thread(runtime.reconciler.create, request)
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        await runtime.reconciler.execute(run_id, request)
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await runtime.aclose()
    if profile:
        profile.dump_stats(args.profile)
    with engine.connect() as conn:
        run = runs.get(conn, run_id)
        assert run is not None
    engine.dispose()
    writes: dict[str, int] = {}
    for op in planned:
        for req in op.requests:
            writes[req.endpoint] = writes.get(req.endpoint, 0) + 1
    return {"status": str(run["status"]), "error": run["error"], "counters": run["counters"],
            "wall": wall, "cpu": cpu, "phases": phases.wall, "phases_cpu": phases.cpu,
            "planned_ops": len(planned), "planned_writes": writes,
            "max_rss_mib": _max_rss_mib(), "rss_before_mib": rss_before}


async def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Plan a first run against the (empty) pool and keep its requests as a seed."""
    from sync_core.authing.planner import Mode, plan_full
    from sync_core.authing.snapshot import read_authing
    from sync_core.metrics import Metrics
    from sync_core.runtime import build_runtime
    from sync_core.store.db import make_engine
    from sync_core.wecom.snapshot import read_wecom

    settings = _settings(args)
    runtime = build_runtime(settings, make_engine(settings.database_url), Metrics())
    try:
        await runtime.sync.prepare()  # defines the extension fields, as a first run would
        source = await read_wecom(runtime.remotes.wecom, concurrency=args.concurrency)
        target = await read_authing(runtime.remotes.authing, runtime.sync.binding)
    finally:
        await runtime.aclose()
    assert source.complete, source.problems
    policy = runtime.sync.binding
    if target.root_department_id:
        policy = replace(policy, root_department_id=target.root_department_id)
    ops = plan_full(source.users, source.departments, target.users, target.departments,
                    policy, Mode.CREATE_UPDATE)
    seed: dict[str, list[Any]] = {"departments": [], "users": [], "memberships": []}
    for op in ops:
        if op.action is not Action.CREATE:
            continue
        for request in op.requests:
            body = _seedable(request.body)
            if request.endpoint == "create-department":
                if isinstance(body.get("parentDepartmentId"), dict):  # a ref: by WeCom id
                    body["parentDepartmentId"] = body["parentDepartmentId"][REF]
                    body["departmentIdType"] = "open_department_id"
                seed["departments"].append(body)
            elif request.endpoint == "create-user":
                seed["users"].append(body)
            elif request.endpoint == "set-user-departments":
                seed["memberships"].append(body)
            else:
                raise AssertionError(f"unexpected request in a first run: {request}")
    Path(args.seed_out).write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    kinds: dict[str, int] = {}
    for op in ops:
        key = f"{op.kind}:{op.action}"
        kinds[key] = kinds.get(key, 0) + 1
    return {"wecom_users": len(source.users), "wecom_departments": len(source.departments),
            "ops": kinds, **{k: len(v) for k, v in seed.items()}}


def _seedable(value: Any) -> Any:
    if isinstance(value, DepartmentRef):
        return {REF: value.open_department_id}
    if isinstance(value, dict):
        return {k: _seedable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_seedable(v) for v in value]
    return value


async def _baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The same pages the reconciler reads, fetched and JSON-decoded, nothing else."""
    gate = asyncio.Semaphore(args.concurrency)
    rows = {"wecom_users": 0, "authing_users": 0}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    wall, cpu = time.perf_counter(), time.process_time()
    async with httpx.AsyncClient(base_url=args.wecom, limits=limits, timeout=60) as wecom, \
            httpx.AsyncClient(base_url=args.authing, limits=limits, timeout=60) as authing:
        token = (await wecom.get("/cgi-bin/gettoken", params={
            "corpid": CORP_ID, "corpsecret": CONTACT_SECRET})).json()["access_token"]
        depts = (await wecom.get("/cgi-bin/department/list",
                                 params={"access_token": token})).json()["department"]

        async def members(dept_id: int) -> None:
            async with gate:
                reply = await wecom.get("/cgi-bin/user/list", params={
                    "access_token": token, "department_id": dept_id})
            rows["wecom_users"] += len(reply.json()["userlist"])

        await asyncio.gather(*(members(d["id"]) for d in depts))
        read_wecom = time.perf_counter() - wall
        started = time.perf_counter()
        mgmt = (await authing.post("/api/v3/get-management-token", json={
            "accessKeyId": USERPOOL, "accessKeySecret": POOL_SECRET})).json()
        headers = {"authorization": f"Bearer {mgmt['data']['access_token']}",
                   "x-authing-userpool-id": USERPOOL}
        authing.headers.update(headers)
        await authing.get("/api/v3/get-organization",
                          params={"organizationCode": ORGANIZATION})
        await authing.get("/api/v3/get-all-departments", params={
            "organizationCode": ORGANIZATION, "withCustomData": "true"})

        async def page(number: int) -> int:
            async with gate:
                reply = await authing.post("/api/v3/list-users", json={"options": {
                    "pagination": {"page": number, "limit": 50}, "withCustomData": True,
                    "withDepartmentIds": True}})
            data = reply.json()["data"]
            rows["authing_users"] += len(data["list"])
            return int(data["totalCount"])

        total = await page(1)
        await asyncio.gather(*(page(n) for n in range(2, math.ceil(total / 50) + 1)))
        read_authing = time.perf_counter() - started
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "phases": {"read_wecom": read_wecom, "read_authing": read_authing},
            "rows": rows, "max_rss_mib": _max_rss_mib()}


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.reconcile_run", description=__doc__)
    parser.add_argument("job", choices=["run", "prepare", "baseline"])
    parser.add_argument("--wecom", required=True)
    parser.add_argument("--authing", required=True)
    parser.add_argument("--db", default="bench-reconcile.db")
    parser.add_argument("--mode", default="full")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--wecom-rate", default="off",
                        help="client-side WeCom pacing per minute, or off")
    parser.add_argument("--seed-out")
    parser.add_argument("--profile", help="write cProfile stats of the run here")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    job = {"run": _run, "prepare": _prepare, "baseline": _baseline}[args.job]
    result = asyncio.run(job(args))
    Path(args.out).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
