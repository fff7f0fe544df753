"""``/ops/*``: the operator API. Every route takes the bearer token."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from sqlmodel import Session

from sync_core.store.inbox import as_json, list_events
from sync_core.store.models import EventSource, EventStatus

from .context import ctx
from .http import check_ops_token, json_error

_STATUSES = {s.value for s in EventStatus}
_SOURCES = {s.value for s in EventSource}


async def events(request: Request) -> Response:
    c = ctx(request)
    token = c.settings.ops_token.get_secret_value() if c.settings.ops_token else None
    if (denied := check_ops_token(request, token)) is not None:
        return denied
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
