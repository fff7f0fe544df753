"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.store.db import ping
from sync_core.store.inbox import count_by_status

from .context import ctx
from .failures import report_database_unavailable

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    c = ctx(request)
    try:
        await run_in_threadpool(ping, c.engine)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        report_database_unavailable(c.throttle, exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


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
    return Response(c.metrics.render(), media_type=c.metrics.content_type)
