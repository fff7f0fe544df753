"""One simulator in its own process, for the reconcile benchmark.

    python -m bench.reconcile_sims wecom --users 100000 --departments 5000 --seed 7
    python -m bench.reconcile_sims authing

Prints ``ready <url>`` on stdout once it serves. The WeCom simulator is loaded with a
generated directory (no callbacks). The Authing simulator gets one extra route,
``POST /_bench/seed {"path": ...}``, which loads a file of the requests the product's
planner made for an empty pool (``bench.reconcile_seed``) straight into the pool state,
under its lock and without webhooks: the same validation as the API, without 200,000
HTTP calls.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulators.authing import api_directory
from simulators.authing.app import AuthingSimulator
from simulators.authing.params import Params
from simulators.generate import paused_gc
from simulators.wecom.app import WeComSimulator

USERPOOL, POOL_SECRET = "bench-pool", "bench-pool-secret"
CORP_ID, CONTACT_SECRET = "wwbenchreconcile", "bench-contact-secret"
ORGANIZATION = "wecom"
REF = "$open"  # a DepartmentRef in a seed file: {"$open": "<WeCom department id>"}


def _wecom(args: argparse.Namespace) -> Any:
    sim = WeComSimulator(corp_id=CORP_ID, contact_secret=CONTACT_SECRET,
                         latency_ms=args.latency_ms)
    with paused_gc():
        sim.admin.seed(users=args.users, departments=args.departments, seed=args.seed)
    return sim.app


def _authing(args: argparse.Namespace) -> Any:
    sim = AuthingSimulator(userpool_id=USERPOOL, secret=POOL_SECRET,
                           organization_code=ORGANIZATION, latency_ms=args.latency_ms)

    async def seed(request: Request) -> JSONResponse:
        body = await request.json()
        started = time.perf_counter()
        counts = seed_pool(sim, json.loads(Path(body["path"]).read_text(encoding="utf-8")))
        return JSONResponse({**counts, "seconds": round(time.perf_counter() - started, 3)})

    sim.app.router.routes.append(Route("/_bench/seed", seed, methods=["POST"]))
    return sim.app


def seed_pool(sim: AuthingSimulator, seed: dict[str, Any]) -> dict[str, int]:
    """Departments (parents first), users, then each user's set-user-departments."""
    state = sim.state
    org = state.orgs[ORGANIZATION]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {REF}:
            return org.open_index[value[REF]]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    with paused_gc(), state.lock, state.muted():
        for body in seed["departments"]:
            state.create_department(resolve(body))
        state.create_users(seed["users"])
        for body in seed["memberships"]:
            api_directory.set_user_departments(sim.deps, Params(resolve(body)))
    return {"departments": len(seed["departments"]), "users": len(seed["users"]),
            "memberships": len(seed["memberships"])}


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.reconcile_sims", description=__doc__)
    parser.add_argument("which", choices=["wecom", "authing"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--departments", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    app = _wecom(args) if args.which == "wecom" else _authing(args)
    # Our own socket with TCP_NODELAY (accepted sockets inherit it), as the CLIs do.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

    def announce() -> None:
        while not server.started:
            time.sleep(0.01)
        print(f"ready http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
