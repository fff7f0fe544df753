"""Admin HTTP routes under ``/_admin/``: the admin console, for the demo and other processes.

They mirror ``sim.admin`` and the simulator's knobs. Directory changes made here are
called back like any admin change. Answers are JSON; a rule broken answers 400 with the
WeCom ``{"errcode", "errmsg"}`` it would have raised, a malformed request 400 with
``{"error"}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ApiError
from .export import ExcelLayout, export_department_csv, export_user_csv, export_xlsx

if TYPE_CHECKING:
    from .app import WeComSimulator

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FAULT_KINDS = ("error", "timeout", "drop")

Body = dict[str, Any]
Action = Callable[[Request, Body], Awaitable[Any] | Any]


def admin_routes(sim: WeComSimulator) -> list[Route]:
    admin = sim.admin

    def state(_: Request, __: Body) -> Any:
        with sim.state.lock:
            return {"corp_id": sim.corp_id, "corp_name": sim.state.corp_name,
                    "departments": len(sim.state.departments), "users": len(sim.state.users),
                    "tags": len(sim.state.tags), "settings": sim.settings()}

    def list_departments(_: Request, __: Body) -> Any:
        with sim.state.lock:
            return {"departments": sim.state.department_list()}

    def list_users(_: Request, __: Body) -> Any:
        with sim.state.lock:
            return {"users": [u.view() for u in sim.state.users]}

    def create_department(_: Request, body: Body) -> Any:
        return {"id": admin.create_department(**body)}

    def update_department(request: Request, body: Body) -> Any:
        return _changes(admin.update_department(_path_int(request, "id"), **body))

    def delete_department(request: Request, _: Body) -> Any:
        return _changes(admin.delete_department(_path_int(request, "id")))

    def create_user(_: Request, body: Body) -> Any:
        return _changes(admin.create_user(**body))

    def update_user(request: Request, body: Body) -> Any:
        return _changes(admin.update_user(request.path_params["userid"], **body))

    def delete_user(request: Request, _: Body) -> Any:
        return _changes(admin.delete_user(request.path_params["userid"]))

    def create_tag(_: Request, body: Body) -> Any:
        return {"tagid": admin.create_tag(**body)}

    def tag_members(request: Request, body: Body) -> Any:
        return _changes(admin.tag_members(_path_int(request, "tagid"), **body))

    def load(_: Request, body: Body) -> Any:
        admin.load(body.get("departments", []), body.get("users", []))
        return state(_, body)

    def seed(_: Request, body: Body) -> Any:
        admin.seed(**body)
        return state(_, body)

    def get_callback(_: Request, __: Body) -> Any:
        return {"url": sim.pusher.config.url, "trimmed": sim.pusher.config.trimmed}

    def set_callback(_: Request, body: Body) -> Any:
        sim.set_callback(**body)
        return get_callback(_, body)

    def drop_callbacks(_: Request, body: Body) -> Any:
        sim.pusher.drop_next(int(body.get("count", 1)))
        return {}

    def deliveries(_: Request, __: Body) -> Any:
        return {"deliveries": [_delivery(d) for d in sim.pusher.deliveries]}

    async def flush(request: Request, body: Body) -> Any:
        await sim.pusher.drain(float(body.get("timeout", 30)))
        return deliveries(request, body)

    def get_settings(_: Request, __: Body) -> Any:
        return sim.settings()

    def put_settings(_: Request, body: Body) -> Any:
        sim.configure(**body)
        return sim.settings()

    def arm_fault(_: Request, body: Body) -> Any:
        kind, endpoint = body.get("kind", "error"), body.get("endpoint")
        times = int(body.get("times", 1))
        if kind not in _FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_FAULT_KINDS)}")
        if kind == "error" and body.get("seconds") is not None:  # an outage
            sim.fail_for(float(body["seconds"]), endpoint, int(body.get("errcode", -1)),
                         http_status=int(body.get("http_status", 200)))
        elif kind == "error":
            sim.fail_next(endpoint, int(body.get("errcode", -1)), times=times,
                          errmsg=body.get("errmsg"), http_status=int(body.get("http_status", 200)))
        elif kind == "timeout":
            sim.hang_next(endpoint, float(body.get("delay", 10)), times=times)
        else:
            sim.drop_next(endpoint, times=times)
        return {}

    def clear_faults(_: Request, __: Body) -> Any:
        latency = sim.faults.latency
        sim.faults.clear()  # also zeroes latency, which is a setting, not a fault: keep it
        sim.faults.latency = latency
        return {}

    def stats(_: Request, __: Body) -> Any:
        s = sim.faults.stats
        return {"reads": dict(s.reads), "writes": dict(s.writes),
                "total_reads": s.total_reads, "total_writes": s.total_writes,
                "peak_concurrency": sim.limits.gauge.peak}

    def reset_stats(_: Request, __: Body) -> Any:
        sim.faults.stats.reset()
        return {}

    def expire_tokens(_: Request, __: Body) -> Any:
        sim.tokens.expire_all()
        return {}

    def revoke_tokens(_: Request, __: Body) -> Any:
        sim.tokens.revoke_all()
        return {}

    async def export_excel(request: Request) -> Response:
        query = request.query_params
        kind = query.get("layout", "")
        if kind == "2026":
            layout = ExcelLayout.export_2026(biz_mail=query.get("biz_mail") in ("1", "true"))
        elif kind == "2020":
            layout = ExcelLayout.template_2020()
        elif kind:
            return JSONResponse({"error": "layout must be 2026 or 2020"}, status_code=400)
        else:
            layout = ExcelLayout(title_row=query.get("title_row", "1") not in ("0", "false"),
                                 account_header=query.get("account_header", "账号"))
        return Response(export_xlsx(sim.state, layout), media_type=_XLSX,
                        headers=_attachment("address-book.xlsx"))

    async def export_users(_: Request) -> Response:
        return Response(export_user_csv(sim.state).encode("utf-8"), media_type="text/csv",
                        headers=_attachment("users.csv"))

    async def export_departments(_: Request) -> Response:
        return Response(export_department_csv(sim.state).encode("utf-8"),
                        media_type="text/csv", headers=_attachment("departments.csv"))

    table: list[tuple[str, str, Action]] = [
        ("/_admin/state", "GET", state),
        ("/_admin/departments", "GET", list_departments),
        ("/_admin/departments", "POST", create_department),
        ("/_admin/departments/{id}", "PATCH", update_department),
        ("/_admin/departments/{id}", "DELETE", delete_department),
        ("/_admin/users", "GET", list_users),
        ("/_admin/users", "POST", create_user),
        ("/_admin/users/{userid}", "PATCH", update_user),
        ("/_admin/users/{userid}", "DELETE", delete_user),
        ("/_admin/tags", "POST", create_tag),
        ("/_admin/tags/{tagid}/members", "POST", tag_members),
        ("/_admin/load", "POST", load),
        ("/_admin/seed", "POST", seed),
        ("/_admin/callback", "GET", get_callback),
        ("/_admin/callback", "PUT", set_callback),
        ("/_admin/callback/drop", "POST", drop_callbacks),
        ("/_admin/deliveries", "GET", deliveries),
        ("/_admin/deliveries/flush", "POST", flush),
        ("/_admin/settings", "GET", get_settings),
        ("/_admin/settings", "PUT", put_settings),
        ("/_admin/faults", "POST", arm_fault),
        ("/_admin/faults", "DELETE", clear_faults),
        ("/_admin/stats", "GET", stats),
        ("/_admin/stats", "DELETE", reset_stats),
        ("/_admin/tokens/expire", "POST", expire_tokens),
        ("/_admin/tokens/revoke", "POST", revoke_tokens),
    ]
    routes = [Route(path, _json_endpoint(action), methods=[method])
              for path, method, action in table]
    routes += [
        Route("/_admin/export/address-book.xlsx", export_excel, methods=["GET"]),
        Route("/_admin/export/users.csv", export_users, methods=["GET"]),
        Route("/_admin/export/departments.csv", export_departments, methods=["GET"]),
    ]
    return routes


def _json_endpoint(action: Action) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
            result = action(request, body)
            if isinstance(result, Awaitable):
                result = await result
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=400)
        except (TypeError, ValueError, KeyError) as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)
        except TimeoutError as exc:
            return JSONResponse({"error": str(exc)}, status_code=504)
        except RuntimeError as exc:  # e.g. flushing a paused pusher
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"ok": True, **(result or {})})

    return endpoint


async def _body(request: Request) -> Body:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _path_int(request: Request, name: str) -> int:
    return int(request.path_params[name])


def _changes(changes: list[Any]) -> Body:
    return {"changes": [{"change_type": c.change_type, "key": c.key} for c in changes]}


def _delivery(delivery: Any) -> Body:
    return {"seq": delivery.seq, "change_type": delivery.change_type, "key": delivery.key,
            "outcome": delivery.outcome, "url": delivery.url,
            "message": delivery.plaintext.decode("utf-8"),
            "attempts": [asdict(a) for a in delivery.attempts]}


def _attachment(filename: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{filename}"'}
