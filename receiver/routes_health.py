"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.store.db import ping
from sync_core.store.inbox import count_by_status
from sync_core.version import version

from .context import ctx
from .failures import report_database_unavailable
from .status import credential_states, schedule

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": version()})


async def readyz(request: Request) -> Response:
    """200 when the database answers and neither remote has refused our credentials since
    they last accepted them; otherwise 503 naming what is wrong."""
    c = ctx(request)
    try:
        await run_in_threadpool(ping, c.engine)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        report_database_unavailable(c.throttle, exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503)
    body: dict[str, str] = {"status": "ready", "database": "ok"}
    runtime = request.app.state.runtime
    if runtime is None:  # a receiver without credentials: storing is its whole job
        return JSONResponse(body)
    for name, state in credential_states(runtime).items():
        if state.refused is not None:
            body.update({"status": "unavailable", name: "credentials refused",
                         f"{name}_error": state.refused[:300]})
        else:
            body[name] = "ok" if state.checked else "unchecked"
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


async def metrics(request: Request) -> Response:
    c = ctx(request)

    def sample() -> dict[str, int]:
        with Session(c.engine) as session:
            return count_by_status(session)

    try:
        depth = await run_in_threadpool(sample)
    except Exception:  # noqa: BLE001 - metrics must render even when the DB is down
        depth = {}
    for status in ("pending", "done", "failed", "dead"):
        c.metrics.inbox_depth.labels(status).set(depth.get(status, 0))
    for direction, planned in schedule(c.settings).items():
        fire = datetime.fromisoformat(str(planned["next_run_at"]))
        c.metrics.next_reconcile.labels(direction).set(fire.timestamp())
    return Response(c.metrics.render(), media_type=c.metrics.content_type)
