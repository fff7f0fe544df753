"""``/ops/*``: the operator API. Every route takes the bearer token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import or_, select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.directory.vocabulary import Kind
from sync_core.store import queue
from sync_core.store.inbox import NewEvent, as_json, get_event, list_events
from sync_core.store.models import EventSource, EventStatus, InboxEvent, utcnow

from . import history
from . import status as status_strip
from .actor import api_actor
from .context import AppContext, ctx
from .http import check_ops_token, json_error
from .params import ParamError, choice, integer, no_body, path_id, query, text

# Department ids are WeCom's 32-bit unsigned integers.
_MAX_DEPARTMENT_ID = 2**32 - 1
_EVENT_FILTERS = {
    "status": choice(EventStatus), "source": choice(EventSource),
    "entity_kind": choice(Kind), "entity_key": text(255),
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
async def event(request: Request, c: AppContext) -> Response:
    """One event with its payload and every attempt (replays included), oldest first."""
    event_id = path_id(request, "event")
    query(request, {})
    detail = await run_in_threadpool(history.event_detail, c.engine, event_id)
    if detail is None:
        return json_error(404, f"no event {event_id}")
    return JSONResponse(detail)


@ops_route
async def replay(request: Request, c: AppContext) -> Response:
    event_id = path_id(request, "event")
    query(request, {})
    await no_body(request)
    try:
        event = await replay_event(c, event_id, actor=api_actor(request))
    except queue.EventInFlight as exc:
        return json_error(409, str(exc))
    if event is None:
        return json_error(404, f"no event {event_id}")
    return JSONResponse({"event": event}, status_code=202)


async def replay_event(c: AppContext, event_id: int, *, actor: str
                       ) -> dict[str, object] | None:
    """Re-queue the event, adding the replay to its history; None when there is none.
    Raises queue.EventInFlight while a worker applies it."""
    def requeue() -> dict[str, object] | None:
        with c.engine.begin() as conn:
            if not queue.replay(conn, event_id=event_id, now=utcnow(), actor=actor):
                return None
        with Session(c.engine) as session:
            row = get_event(session, event_id)
            return as_json(row) if row else None

    event = await run_in_threadpool(requeue)
    if event is not None:
        c.wake.set()
    return event


@ops_route
async def object_history(request: Request, c: AppContext) -> Response:
    """``/ops/objects/{kind}/{key}``: kind ``user`` or ``department``; key a WeCom userid or
    department id, or an Authing id."""
    kind, key = object_ref(request.path_params["kind"], request.path_params["key"])
    query(request, {})
    return JSONResponse(await run_in_threadpool(history.object_history, c.engine, kind, key))


@ops_route
async def status(request: Request, c: AppContext) -> Response:
    query(request, {})
    return JSONResponse(await status_strip.snapshot(request))


@ops_route
async def openapi(request: Request, c: AppContext) -> Response:
    query(request, {})
    from .openapi import document

    return JSONResponse(document())


def object_ref(kind: str, key: str) -> tuple[str, str]:
    """Checked ``kind`` and ``key`` of an object; raises ParamError."""
    choice(history.OBJECT_KINDS)("kind", kind)
    text(255)("key", key)
    if not key.strip() or key != key.strip():
        raise ParamError("key must be non-empty, without surrounding spaces")
    return kind, key


@ops_route
async def sync_user(request: Request, c: AppContext) -> Response:
    userid = request.path_params["userid"]
    query(request, {})
    await no_body(request)
    return await _queued(c, "user", userid)


@ops_route
async def sync_department(request: Request, c: AppContext) -> Response:
    key = str(path_id(request, "department", _MAX_DEPARTMENT_ID))
    query(request, {})
    await no_body(request)
    return await _queued(c, "department", key)


async def _queued(c: AppContext, kind: str, key: str) -> Response:
    event_id = await sync_now(c, kind, key)
    return JSONResponse({"queued": {"entity_kind": kind, "entity_key": key},
                         "event_id": event_id}, status_code=202)


async def sync_now(c: AppContext, kind: str, key: str) -> int:
    """Sync one user or department, named by its WeCom key, now: queued like a callback,
    so it keeps per-entity order, and applied in the configured direction(s)
    (``engine.sync_now``). Returns the event's id (its outcome says what each direction
    did). Raises ParamError for a key WeCom cannot hold."""
    if kind == "user":
        if not _USERID.fullmatch(key):
            raise ParamError("not a WeCom userid")
        payload: dict[str, object] = {"kind": "user", "change_type": "sync", "user_id": key}
    else:
        key = str(integer(1, _MAX_DEPARTMENT_ID)("department id", key))
        payload = {"kind": "department", "change_type": "sync", "id": int(key)}
    dedupe = uuid.uuid4().hex
    await c.writer.submit(NewEvent(
        source=EventSource.OPS.value, dedupe_key=dedupe, entity_kind=kind,
        entity_key=key, event_type="sync", payload=payload, received_at=utcnow()))
    c.wake.set()

    def stored_id() -> int:
        with Session(c.engine) as session:
            # A claim may already have released the key (``<key>#<id>``: store.queue).
            found = session.scalars(select(col(InboxEvent.id)).where(
                col(InboxEvent.source) == EventSource.OPS.value,
                or_(col(InboxEvent.dedupe_key) == dedupe,
                    col(InboxEvent.dedupe_key).startswith(f"{dedupe}#")))).one()
            assert found is not None  # a stored row has its id
            return found

    return await run_in_threadpool(stored_id)
