"""The console's pages: server-rendered HTML over the same store reads and actions as the
JSON API (``history``, ``status``, ``routes_ops``, ``routes_runs``). Every read works without
JavaScript; a page whose subject is still moving (a running run, a queued event) asks the
browser to reload itself every few seconds with a meta refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from sync_core.directory.operations import Action, Mode
from sync_core.directory.vocabulary import SYNCED_KINDS
from sync_core.engine.executor import ItemStatus
from sync_core.engine.reconciler import RequestError
from sync_core.engine.run_log import STAGED
from sync_core.store import queue, runs
from sync_core.store.inbox import as_json, list_events
from sync_core.store.models import EventSource, EventStatus, RunStatus
from sync_core.store.writer import WriterClosed

from .. import history
from .. import status as status_strip
from ..actor import ActorError, actor, operator_name
from ..context import AppContext, ctx
from ..http import secret_matches
from ..params import ParamError, choice, integer, path_id, query, text
from ..routes_ops import object_ref, replay_event, sync_now
from ..routes_runs import MAX_UPLOAD, Unavailable, decide, start_run
from . import auth, filters
from .forms import FormError, read_form

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters.update(filters.ALL)
PAGE = 100  # rows per page
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
_RUN_FILTERS = {
    "status": choice(RunStatus), "direction": choice(status_strip.DIRECTIONS),
    "mode": choice(Mode), "source": choice(("api", "excel")),
    "trigger": choice(("schedule", "ops", "console", "cli", "batch_job")),
    "dry_run": choice(("true", "false")), "before": integer(),
}
_ITEM_FILTERS = {
    "item_status": choice([*ItemStatus, STAGED]), "kind": choice(SYNCED_KINDS),
    "action": choice(Action), "key": text(255), "offset": integer(0),
}
_EVENT_FILTERS = {
    "status": choice(EventStatus), "source": choice(EventSource), "before": integer(),
}
# What a dry run's item would do, in words.
WOULD = {"create": "would create", "update": "would update", "move": "would move",
         "delete": "would delete", "resign": "would resign", "suspend": "would suspend",
         "unchanged": "unchanged", "skip": "would skip"}

Page = Callable[[Request, AppContext, dict[str, Any]], Awaitable[Response]]


def _token(c: AppContext) -> str | None:
    return c.settings.ops_token.get_secret_value() if c.settings.ops_token else None


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """Signed-in pages: a GET without a session goes to the sign-in form; a POST without a
    session or without the right CSRF token is refused (403) and changes nothing."""
    async def route(request: Request) -> Response:
        c = ctx(request)
        session = auth.session(request, _token(c))
        if request.method == "POST":
            stale = _message(request, 403, "Refused",
                             "The form is stale or did not come from this console: "
                             "reload the page and try again.")
            if session is None:
                return stale  # unread: a body from nobody costs nothing
            try:
                form = await read_form(request, max_upload=MAX_UPLOAD)
            except FormError as exc:
                return _message(request, exc.status, "Refused", str(exc))
            if not auth.csrf_ok(session, form.get("csrf")):
                return stale
            request.state.form = form
        elif session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{auth.PATH}/login?{urlencode({'next': target})}", 303)
        try:
            return await handler(request, c, session)
        except ParamError as exc:
            return _message(request, 400, "Bad request", str(exc))

    route.__name__ = handler.__name__
    return route


async def render(request: Request, name: str, session: dict[str, Any] | None, *,
                 status_code: int = 200, refresh: int | None = None, **context: Any
                 ) -> Response:
    strip = await status_strip.snapshot(request) if session is not None else None
    return TEMPLATES.TemplateResponse(request, name, {
        "csrf": session["csrf"] if session else "", "strip": strip, "refresh": refresh,
        "operator": session.get("name") if session else None,
        "base": auth.PATH, "would": WOULD, "quote": quote, **context},
        status_code=status_code, headers={"Cache-Control": "no-store",
                                          "X-Frame-Options": "DENY",
                                          "Referrer-Policy": "same-origin"})


def _message(request: Request, status: int, title: str, text_: str) -> Response:
    return TEMPLATES.TemplateResponse(request, "message.html", {
        "title": title, "text": text_, "strip": None, "csrf": "", "refresh": None,
        "base": auth.PATH}, status_code=status)


def _actor(session: dict[str, Any]) -> str:
    name = session.get("name")
    return actor("console", name if isinstance(name, str) else None)


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(f"{auth.PATH}{path}", status_code=303)


# -- sign-in ------------------------------------------------------------------------------

def _next(value: object) -> str:
    """Only a path inside the console: a sign-in never redirects elsewhere."""
    target = value if isinstance(value, str) else ""
    if not target.startswith(auth.PATH + "/") or "//" in target or "\\" in target:
        return f"{auth.PATH}/runs"
    return target


async def login(request: Request) -> Response:
    c = ctx(request)
    token = _token(c)
    if token is None:
        return _message(request, 403, "Console disabled",
                        "Set WECOM_SYNC_OPS_TOKEN to use the console.")
    error = None
    if request.method == "POST":
        try:
            form = await read_form(request, max_fields=5)
        except FormError as exc:
            return _message(request, exc.status, "Refused", str(exc))
        presented = form.get("token")
        typed = form.get("name")
        try:
            name = operator_name(typed if isinstance(typed, str) else None)
        except ActorError as exc:
            return await render(request, "login.html", None, next=_next(form.get("next")),
                                error=str(exc), typed_name=typed, status_code=400)
        if isinstance(presented, str) and secret_matches(presented.strip(), token):
            response = RedirectResponse(_next(form.get("next")), status_code=303)
            auth.sign_in(response, request, token, name=name)
            return response
        error = "That is not the ops token."
        return await render(request, "login.html", None, next=_next(form.get("next")),
                            error=error, typed_name=name, status_code=401)
    return await render(request, "login.html", None, next=_next(
        request.query_params.get("next")), error=None, typed_name=None)


@page
async def logout(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    response = RedirectResponse(f"{auth.PATH}/login", status_code=303)
    auth.sign_out(response)
    return response


async def home(request: Request) -> Response:
    return RedirectResponse(f"{auth.PATH}/runs", status_code=303)


# -- runs -----------------------------------------------------------------------------------

@page
async def runs_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    filters = query(request, _RUN_FILTERS)
    before = filters.pop("before", None)
    if (dry := filters.pop("dry_run", None)) is not None:
        filters["dry_run"] = dry == "true"

    def select() -> list[dict[str, Any]]:
        with c.engine.connect() as conn:
            rows = runs.recent(conn, limit=PAGE + 1, before_id=before, **filters)
        return [runs.as_json(r) for r in rows]

    found = await run_in_threadpool(select)
    more = len(found) > PAGE
    found = found[:PAGE]
    older = None
    if more:
        older = urlencode({**{k: v for k, v in request.query_params.items() if k != "before"},
                           "before": found[-1]["id"]})
    return await render(request, "runs.html", session, runs=found, filters={
        **filters, "dry_run": dry or ""}, older=older,
        refresh=5 if any(r["status"] in ACTIVE for r in found) else None,
        statuses=[s.value for s in RunStatus], modes=[m.value for m in Mode],
        directions=status_strip.DIRECTIONS)


@page
async def run_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    run_id = path_id(request, "run")
    filters = query(request, _ITEM_FILTERS, {"offset": 0})
    offset = filters.pop("offset")
    if "item_status" in filters:
        filters["status"] = filters.pop("item_status")

    def select() -> tuple[dict[str, Any] | None, int]:
        with c.engine.connect() as conn:
            run = runs.get(conn, run_id)
            if run is None:
                return None, 0
            items = runs.items(conn, run_id, limit=PAGE + 1, offset=offset, **filters)
            staged = len(runs.items(conn, run_id, status=STAGED))
            return runs.as_json(run, items), staged

    run, staged = await run_in_threadpool(select)
    if run is None:
        return _message(request, 404, "Not found", f"There is no run {run_id}.")
    items = run["items"]
    params = {k: v for k, v in request.query_params.items() if k != "offset"}
    pages = {
        "newer": urlencode({**params, "offset": max(0, offset - PAGE)}) if offset else None,
        "older": urlencode({**params, "offset": offset + PAGE}) if len(items) > PAGE else None,
    }
    run["items"] = items[:PAGE]
    return await render(request, "run.html", session, run=run, staged=staged, pages=pages,
                        filters={**filters, "item_status": filters.get("status", "")},
                        item_statuses=[*ItemStatus, STAGED], kinds=[k.value for k in SYNCED_KINDS],
                        actions=[a.value for a in Action],
                        refresh=3 if run["status"] in ACTIVE else None)


@page
async def run_decision(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    run_id = path_id(request, "run")
    decision = {"approve": "approved", "reject": "rejected",
                "cancel": "cancelled"}.get(request.path_params["action"])
    if decision is None:
        return _message(request, 404, "Not found", "No such action.")
    try:
        await decide(request, c, run_id, decision, actor=_actor(session))
    except LookupError:
        return _message(request, 404, "Not found", f"There is no run {run_id}.")
    except (RequestError, runs.DecisionError, Unavailable) as exc:
        return _message(request, 409, "Not possible", str(exc))
    return _back(f"/runs/{run_id}")


@page
async def start_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    error = None
    if request.method == "POST":
        form: FormData = request.state.form
        fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        fields["dry_run"] = "true" if form.get("dry_run") else "false"
        fields["departments"] = form.get("departments")
        upload = form.get("file")
        try:
            run_id = await start_run(request, fields, upload, trigger="console")
        except RequestError as exc:
            error = str(exc)
        except runs.RunConflict as exc:
            error = f"{exc}: see run {exc.run_id}"
        except Unavailable as exc:
            error = str(exc)
        else:
            return _back(f"/runs/{run_id}")
    return await render(request, "start.html", session, error=error,
                        modes=[m.value for m in Mode], directions=status_strip.DIRECTIONS,
                        status_code=400 if error else 200)


# -- inbox, events, objects -----------------------------------------------------------------

@page
async def inbox_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    filters = query(request, _EVENT_FILTERS)
    before = filters.pop("before", None)

    def select() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from sqlmodel import Session

        with Session(c.engine) as s:
            dead = [] if filters.get("status") or before else [
                as_json(e) for e in list_events(s, status=EventStatus.DEAD.value, limit=PAGE,
                                                source=filters.get("source"))]
            rows = [as_json(e) for e in list_events(s, limit=PAGE + 1, before_id=before,
                                                    **filters)]
        return dead, rows

    dead, rows = await run_in_threadpool(select)
    older = None
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        older = urlencode({**filters, "before": rows[-1]["id"]})
    if dead:  # dead letters first, once
        dead_ids = {e["id"] for e in dead}
        rows = [e for e in rows if e["id"] not in dead_ids]
    return await render(request, "inbox.html", session, dead=dead, events=rows,
                        filters=filters, older=older, statuses=[s.value for s in EventStatus],
                        sources=[s.value for s in EventSource])


@page
async def event_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    event_id = path_id(request, "event")
    query(request, {})
    event = await run_in_threadpool(history.event_detail, c.engine, event_id)
    if event is None:
        return _message(request, 404, "Not found", f"There is no event {event_id}.")
    moving = event["status"] in (EventStatus.PENDING.value, EventStatus.FAILED.value)
    return await render(request, "event.html", session, event=event,
                        refresh=2 if moving else None)


@page
async def event_replay(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    event_id = path_id(request, "event")
    try:
        replayed = await replay_event(c, event_id, actor=_actor(session))
    except queue.EventInFlight as exc:
        return _message(request, 409, "Not possible", str(exc))
    if replayed is None:
        return _message(request, 404, "Not found", f"There is no event {event_id}.")
    return _back(f"/events/{event_id}")


@page
async def object_search(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    params = query(request, {"kind": choice(history.OBJECT_KINDS), "key": text(255)})
    if params.get("key", "").strip():
        kind, key = object_ref(params.get("kind", "user"), params["key"].strip())
        return _back(f"/objects/{kind}/{quote(key, safe='')}")
    return await render(request, "object_search.html", session)


@page
async def object_page(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    kind, key = object_ref(request.path_params["kind"], request.path_params["key"])
    query(request, {})
    found = await run_in_threadpool(history.object_history, c.engine, kind, key)
    return await render(request, "object.html", session, obj=found)


@page
async def object_sync(request: Request, c: AppContext, session: dict[str, Any]) -> Response:
    kind, key = object_ref(request.path_params["kind"], request.path_params["key"])
    try:
        event_id = await sync_now(c, kind, key)
    except WriterClosed:
        return _message(request, 503, "Unavailable", "Shutting down: try again shortly.")
    return _back(f"/events/{event_id}")
