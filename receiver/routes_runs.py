"""``/ops/reconcile`` and ``/ops/runs``: start, list, inspect and approve reconcile runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.directory.operations import Action, Mode
from sync_core.directory.vocabulary import SYNCED_KINDS
from sync_core.engine.executor import ItemStatus
from sync_core.engine.reconciler import ExcelInput, RequestError, RunRequest
from sync_core.engine.reconcilers import Reconcilers
from sync_core.engine.run_log import STAGED
from sync_core.store import runs
from sync_core.store.models import RunStatus, utcnow

from .actor import api_actor
from .context import AppContext
from .http import json_error
from .params import choice, integer, no_body, path_id, query, text
from .routes_ops import ops_route
from .status import schedule

MAX_UPLOAD = 50 * 1024 * 1024
_DIRECTIONS = ("upstream", "downstream")
_SOURCES = ("api", "excel")
_RUN_FILTERS = {
    "status": choice(RunStatus), "direction": choice(_DIRECTIONS), "mode": choice(Mode),
    "source": choice(_SOURCES), "trigger": text(32), "dry_run": choice(("true", "false")),
    "limit": integer(1, 500), "before": integer(),
}
_ITEM_FILTERS = {
    "item_status": choice([*ItemStatus, STAGED]), "kind": choice(SYNCED_KINDS),
    "action": choice(Action), "key": text(255), "limit": integer(1, 100_000),
    "offset": integer(0),
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
# The fields each body may hold (DESIGN.md "HTTP"): anything else is refused by name, so a
# misspelt "dryrun" never starts a real run. A JSON body cannot carry a file.
_JSON_TYPES: dict[str, type] = {"direction": str, "mode": str, "source": str, "dry_run": bool}
_FORM_FIELDS = (*_JSON_TYPES, "sheet", "start_row", "end_row", "keep_top_department")
_FORM_FILES = ("file", "departments")


def _reconciler(request: Request) -> Reconcilers | None:
    runtime = request.app.state.runtime
    return runtime.reconciler if runtime is not None else None


@ops_route
async def reconcile(request: Request, c: AppContext) -> Response:
    try:
        fields, upload = await _body(request)
        run_id = await start_run(request, fields, upload, trigger="ops")
    except RequestError as exc:
        return json_error(400, str(exc))
    except Unavailable as exc:
        return json_error(503, str(exc))
    except runs.RunConflict as exc:
        return JSONResponse({"error": str(exc), "run_id": exc.run_id}, status_code=409)
    return JSONResponse({"run_id": run_id}, status_code=202)


async def start_run(request: Request, fields: dict[str, Any], upload: object, *,
                    trigger: str) -> int:
    """Start a run from request fields (``direction``, ``mode``, ``dry_run``, ``source``,
    and with an uploaded file ``sheet``, ``start_row``, ``end_row``,
    ``keep_top_department`` and an optional ``departments`` file). Raises RequestError,
    Unavailable (no credentials) or runs.RunConflict."""
    reconciler = _reconciler(request)
    if reconciler is None:
        raise Unavailable("reconcile needs WECOM_SYNC_WECOM_CONTACT_SECRET and the "
                          "Authing key pair")
    if isinstance(upload, UploadFile) and (upload.filename or upload.size):
        data = await upload.read()
        if not data:
            raise RequestError("the uploaded file is empty")
        departments = fields.get("departments")
        tree = await departments.read() if isinstance(departments, UploadFile) and (
            departments.filename or departments.size) else None
        fields = {**fields, "source": fields.get("source") or "excel"}
        excel = ExcelInput(data=data, filename=upload.filename or "upload.xlsx",
                           sheet=_sheet(fields.get("sheet")),
                           start_row=_int(fields.get("start_row"), 0, "start_row"),
                           end_row=_int(fields.get("end_row"), -1, "end_row"),
                           keep_top_department=_bool(fields.get("keep_top_department", False),
                                                     "keep_top_department"),
                           departments=tree)
    else:
        excel = None
    run_request = _run_request(fields, trigger, excel)
    if run_request.excel is not None:
        await run_in_threadpool(_check_file, run_request.excel)
    return await reconciler.start(run_request)


@ops_route
async def list_runs(request: Request, c: AppContext) -> Response:
    """``?status= &direction= &mode= &source= &trigger= &dry_run= (true|false)
    &limit= (1-500, 50) &before=`` (run id)"""
    filters = query(request, _RUN_FILTERS, {"limit": 50})
    filters["before_id"] = filters.pop("before", None)
    if (dry := filters.pop("dry_run", None)) is not None:
        filters["dry_run"] = dry == "true"

    def select() -> list[dict[str, Any]]:
        with c.engine.connect() as conn:
            return [runs.as_json(r) for r in runs.recent(conn, **filters)]

    return JSONResponse({"runs": await run_in_threadpool(select),
                         "schedule": schedule(c.settings)})


@ops_route
async def get_run(request: Request, c: AppContext) -> Response:
    """One run with its items; ``?item_status= &kind= &action= &key=`` filter the items,
    ``?limit= &offset=`` page them."""
    run_id = path_id(request, "run")
    filters = query(request, _ITEM_FILTERS)
    if "item_status" in filters:
        filters["status"] = filters.pop("item_status")

    def select() -> dict[str, Any] | None:
        with c.engine.connect() as conn:
            run = runs.get(conn, run_id)
            return None if run is None else runs.as_json(
                run, runs.items(conn, run_id, **filters))

    run = await run_in_threadpool(select)
    if run is None:
        return json_error(404, f"no run {run_id}")
    return JSONResponse(run)


@ops_route
async def approve(request: Request, c: AppContext) -> Response:
    return await _decided(request, c, "approved")


@ops_route
async def reject(request: Request, c: AppContext) -> Response:
    return await _decided(request, c, "rejected")


@ops_route
async def cancel(request: Request, c: AppContext) -> Response:
    return await _decided(request, c, "cancelled")


async def _decided(request: Request, c: AppContext, decision: str) -> Response:
    run_id = path_id(request, "run")
    query(request, {})
    await no_body(request)
    try:
        status = await decide(request, c, run_id, decision, actor=api_actor(request))
    except LookupError as exc:
        return json_error(404, str(exc).strip("'"))
    except (RequestError, runs.DecisionError) as exc:
        return json_error(409, str(exc))
    except Unavailable as exc:
        return json_error(503, str(exc))
    return JSONResponse({"run_id": run_id, "status": status, "decision": decision},
                        status_code=202 if decision == "approved" else 200)


class Unavailable(Exception):
    """This process cannot act on the run (→ 503)."""


async def decide(request: Request, c: AppContext, run_id: int, decision: str, *,
                 actor: str) -> str:
    """Approve (apply the staged deletes), reject (drop them) or cancel (stop the run);
    notes who and when. Returns the run's new status. Raises LookupError, RequestError or
    runs.DecisionError (wrong state), Unavailable (approval without credentials)."""
    now = utcnow()
    if decision == "approved":
        reconciler = _reconciler(request)
        if reconciler is None:
            raise Unavailable("approval needs the WeCom and Authing credentials")
        await reconciler.approve(run_id, actor)
        return RunStatus.RUNNING.value
    if decision == "rejected":
        run = await run_in_threadpool(_in_transaction, c, lambda conn: runs.reject(
            conn, run_id=run_id, actor=actor, now=now))
        return str(run["status"])
    await run_in_threadpool(_in_transaction, c, lambda conn: runs.cancel(
        conn, run_id=run_id, actor=actor, now=now))
    if (reconciler := _reconciler(request)) is not None:
        reconciler.cancel(run_id)  # a run of this process stops now; another's at its lease
    return RunStatus.FAILED.value


def _in_transaction(c: AppContext, step: Any) -> Any:
    with c.engine.begin() as conn:
        return step(conn)


async def _body(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    """The JSON or multipart body's fields, and the uploaded file of a multipart one."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD:
            raise RequestError(f"upload larger than {MAX_UPLOAD // (1024 * 1024)} MiB")
        try:
            form = await request.form(max_files=2, max_fields=20)
        except Exception as exc:  # noqa: BLE001 - malformed multipart is the caller's
            raise RequestError(f"malformed multipart body: {exc}") from None
        _check_form(form.multi_items())
        fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError("multipart reconcile needs a 'file' part (the Excel export)")
        departments = form.get("departments")
        if isinstance(departments, UploadFile):
            fields["departments"] = departments
        return fields, upload
    body = await request.body()
    try:
        fields = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError("body must be JSON (or multipart with a file)") from None
    if not isinstance(fields, dict):
        raise RequestError("body must be a JSON object")
    _check_json(fields)
    return fields, None


def _check_json(fields: dict[str, Any]) -> None:
    """Raises RequestError naming the first unknown fields, or a field of the wrong JSON
    type (``"dry_run": "yes"`` is not a boolean)."""
    unknown = sorted(k for k in fields if k not in _JSON_TYPES)
    if unknown:
        hint = "; a file goes in a multipart upload (part 'file')" if any(
            k in ("excel", "file", "departments") for k in unknown) else ""
        raise RequestError(f"unknown field(s) {_names(unknown)}: the JSON body takes "
                           f"{list(_JSON_TYPES)}{hint}")
    for name, kind in _JSON_TYPES.items():
        if name in fields and not isinstance(fields[name], kind):
            raise RequestError(f"{name} must be a JSON "
                               f"{'boolean' if kind is bool else 'string'}")


def _check_form(items: list[tuple[str, Any]]) -> None:
    """Raises RequestError for an unknown or repeated multipart part, or a text part where
    a file belongs (and the reverse)."""
    seen: set[str] = set()
    for name, value in items:
        is_file = isinstance(value, UploadFile)
        if name not in (_FORM_FILES if is_file else _FORM_FIELDS):
            what = "file part" if is_file else "field"
            raise RequestError(f"unknown {what} {_names([name])}: a multipart reconcile takes "
                               f"the fields {list(_FORM_FIELDS)} and the files "
                               f"{list(_FORM_FILES)}")
        if name in seen:
            raise RequestError(f"{_names([name])} given more than once")
        seen.add(name)


def _names(names: list[str]) -> str:
    return ", ".join(repr(n[:40]) for n in names[:5])


def _check_file(excel: ExcelInput) -> None:
    """A file of the wrong shape is the caller's mistake: a 400 naming the place, before a
    run exists. (The run reads it again, with WeCom's department tree beside it.)"""
    from sync_core.excel.snapshot import check_excel

    check_excel(excel)


def _run_request(fields: dict[str, Any], trigger: str,
                 excel: ExcelInput | None) -> RunRequest:
    direction = str(fields.get("direction") or "upstream")
    if direction not in _DIRECTIONS:
        raise RequestError(f"direction must be one of {list(_DIRECTIONS)}")
    try:
        mode = Mode(str(fields.get("mode") or Mode.CREATE_UPDATE))
    except ValueError:
        raise RequestError(f"mode must be one of {[m.value for m in Mode]}") from None
    source = str(fields.get("source") or "api")
    if source not in _SOURCES:
        raise RequestError("source must be api or excel")
    dry_run = _bool(fields.get("dry_run", False), "dry_run")
    if source == "excel" and excel is None:
        raise RequestError("source excel needs a multipart upload with the file")
    return RunRequest(direction=direction, mode=mode, source=source, dry_run=dry_run,
                      excel=excel, trigger=trigger)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, str):
        if value.lower() not in (*_TRUE, *_FALSE):
            raise RequestError(f"{name} must be true or false")
        value = value.lower() in _TRUE
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false")
    return value


def _int(value: Any, default: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be an integer") from None


def _sheet(value: Any) -> int | str | None:
    if value in (None, ""):
        return None
    text = str(value)
    return int(text) if text.isdigit() else text
