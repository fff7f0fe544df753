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
from sync_core.wecom_events import EntityKind

from .context import AppContext, ctx
from .http import check_ops_token, json_error
from .params import ParamError, choice, integer, path_id, query, text

# Department ids are WeCom's 32-bit unsigned integers.
_MAX_DEPARTMENT_ID = 2**32 - 1
_EVENT_FILTERS = {
    "status": choice(EventStatus), "source": choice(EventSource),
    "entity_kind": choice(EntityKind), "entity_key": text(255),
    "limit": integer(1, 1000), "before": integer(),
}
# WeCom's userid rule: 1-64 bytes of letters, digits and _-@. starting alphanumeric.
_USERID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$")

Handler = Callable[[Request, AppContext], Awaitable[Response]]


def ops_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        c = ctx(request)
        token = c.settings.ops_token.get_secret_value() if c.settings.ops_token else None
        if (denied := check_ops_token(request, token)) is not None:
            return denied
        try:
            return await handler(request, c)
        except ParamError as exc:
            return json_error(400, str(exc))

    route.__name__ = handler.__name__
    return route


@ops_route
async def events(request: Request, c: AppContext) -> Response:
    """``?status= &source= &entity_kind= &entity_key= &limit= (1-1000, 100) &before=`` (id)"""
    filters = query(request, _EVENT_FILTERS, {"limit": 100})
    filters["before_id"] = filters.pop("before", None)

    def select() -> list[dict[str, object]]:
        with Session(c.engine) as session:
            return [as_json(row) for row in list_events(session, **filters)]

    return JSONResponse({"events": await run_in_threadpool(select)})


@ops_route
async def replay(request: Request, c: AppContext) -> Response:
    event_id = path_id(request, "event")
    query(request, {})

    def requeue() -> dict[str, object] | None:
        with c.engine.begin() as conn:
            if not queue.replay(conn, event_id=event_id, now=utcnow()):
                return None
        with Session(c.engine) as session:
            row = get_event(session, event_id)
            return as_json(row) if row else None

    event = await run_in_threadpool(requeue)
    if event is None:
        return json_error(404, f"no event {event_id}")
    c.wake.set()
    return JSONResponse({"event": event}, status_code=202)


@ops_route
async def sync_user(request: Request, c: AppContext) -> Response:
    userid = request.path_params["userid"]
    query(request, {})
    if not _USERID.fullmatch(userid):
        return json_error(400, "not a WeCom userid")
    return await _enqueue(c, "user", userid, {"kind": "user", "change_type": "sync",
                                              "user_id": userid})


@ops_route
async def sync_department(request: Request, c: AppContext) -> Response:
    key = str(path_id(request, "department", _MAX_DEPARTMENT_ID))
    query(request, {})
    return await _enqueue(c, "department", key, {"kind": "department", "change_type": "sync",
                                                 "id": int(key)})


async def _enqueue(c: AppContext, kind: str, key: str, payload: dict[str, object]) -> Response:
    """Sync one object now: queued like a callback, so it keeps per-entity order."""
    await c.writer.submit(NewEvent(
        source=EventSource.OPS.value, dedupe_key=uuid.uuid4().hex, entity_kind=kind,
        entity_key=key, event_type="sync", payload=payload, received_at=utcnow()))
    c.wake.set()
    return JSONResponse({"queued": {"entity_kind": kind, "entity_key": key}}, status_code=202)
