"""``/ops/*``: the operator API. Every route takes the bearer token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.store import queue
from sync_core.store.inbox import NewEvent, as_json, get_event, list_events
from sync_core.store.models import EventSource, EventStatus, utcnow

from .context import AppContext, ctx
from .http import check_ops_token, json_error

_STATUSES = {s.value for s in EventStatus}
_SOURCES = {s.value for s in EventSource}
# WeCom's userid rule: 1-64 bytes of letters, digits and _-@. starting alphanumeric.
_USERID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$")

Handler = Callable[[Request, AppContext], Awaitable[Response]]


def ops_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        c = ctx(request)
        token = c.settings.ops_token.get_secret_value() if c.settings.ops_token else None
        if (denied := check_ops_token(request, token)) is not None:
            return denied
        return await handler(request, c)

    route.__name__ = handler.__name__
    return route


@ops_route
async def events(request: Request, c: AppContext) -> Response:
    status = request.query_params.get("status") or None
    source = request.query_params.get("source") or None
    if status is not None and status not in _STATUSES:
        return json_error(400, f"status must be one of {sorted(_STATUSES)}")
    if source is not None and source not in _SOURCES:
        return json_error(400, f"source must be one of {sorted(_SOURCES)}")
    try:
        limit = int(request.query_params.get("limit", "100"))
        before = request.query_params.get("before")
        before_id = int(before) if before else None
    except ValueError:
        return json_error(400, "limit and before must be integers")
    if not 1 <= limit <= 1000:
        return json_error(400, "limit must be between 1 and 1000")

    def query() -> list[dict[str, object]]:
        with Session(c.engine) as session:
            rows = list_events(session, status=status, source=source, limit=limit,
                               before_id=before_id)
            return [as_json(row) for row in rows]

    return JSONResponse({"events": await run_in_threadpool(query)})


@ops_route
async def replay(request: Request, c: AppContext) -> Response:
    raw = request.path_params["id"]
    if not raw.isdigit():
        return json_error(400, "event id must be an integer")

    def requeue() -> dict[str, object] | None:
        with c.engine.begin() as conn:
            if not queue.replay(conn, event_id=int(raw), now=utcnow()):
                return None
        with Session(c.engine) as session:
            row = get_event(session, int(raw))
            return as_json(row) if row else None

    event = await run_in_threadpool(requeue)
    if event is None:
        return json_error(404, f"no event {raw}")
    c.wake.set()
    return JSONResponse({"event": event}, status_code=202)


@ops_route
async def sync_user(request: Request, c: AppContext) -> Response:
    userid = request.path_params["userid"]
    if not _USERID.fullmatch(userid):
        return json_error(400, "not a WeCom userid")
    return await _enqueue(c, "user", userid, {"kind": "user", "change_type": "sync",
                                              "user_id": userid})


@ops_route
async def sync_department(request: Request, c: AppContext) -> Response:
    raw = request.path_params["id"]
    if not raw.isdigit() or not 1 <= int(raw) < 2**32:
        return json_error(400, "department id must be a positive integer")
    key = str(int(raw))
    return await _enqueue(c, "department", key, {"kind": "department", "change_type": "sync",
                                                 "id": int(key)})


async def _enqueue(c: AppContext, kind: str, key: str, payload: dict[str, object]) -> Response:
    """Sync one object now: queued like a callback, so it keeps per-entity order."""
    await c.writer.submit(NewEvent(
        source=EventSource.OPS.value, dedupe_key=uuid.uuid4().hex, entity_kind=kind,
        entity_key=key, event_type="sync", payload=payload, received_at=utcnow()))
    c.wake.set()
    return JSONResponse({"queued": {"entity_kind": kind, "entity_key": key}}, status_code=202)
