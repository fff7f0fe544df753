"""Admin HTTP routes under ``/_admin`` for a simulator running in another process
(``wecom-sync simulate authing``): seed, edit as a console operator would, arm faults,
read counters and the webhook delivery log. No token; loopback use only.

Errors answer the API envelope with a real HTTP status (400/404), since these routes are
for tests and scripts, not for the product.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..faults import Fault
from . import api_config, api_directory, api_users
from .admin import Admin
from .endpoint import Handler, failure, ok
from .errors import ApiError

Action = Callable[[Admin, dict[str, Any]], Any]  # an awaitable result is awaited


def _wrap(admin: Admin, action: Action) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def serve(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return JSONResponse(failure(400, "request body must be JSON", None), 400)
        if not isinstance(body, dict):
            return JSONResponse(failure(400, "request body must be a JSON object", None), 400)
        try:
            result = action(admin, body)
            if inspect.isawaitable(result):  # one that waits: never on the event loop
                result = await result
            return JSONResponse(ok(result))
        except ApiError as exc:
            return JSONResponse(failure(exc.status, exc.message, exc.api_code), exc.status)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse(failure(400, str(exc), None), 400)

    return serve


def _api(handler: Handler) -> Action:
    return lambda admin, body: admin.call(handler, body)


def _arm(admin: Admin, body: dict[str, Any]) -> Any:
    fault = Fault(kind=str(body.get("kind", "error")), remaining=int(body.get("times", 1)),
                  http_status=int(body.get("http_status", 503)), payload=body.get("payload"),
                  delay=float(body.get("delay", 0.0)), endpoint=body.get("endpoint"))
    if fault.kind not in ("error", "timeout", "drop"):
        raise ValueError("kind must be error, timeout or drop")
    if body.get("seconds") is not None:  # an outage: every call for that long
        admin.deps.faults.outage(fault, float(body["seconds"]))
    else:
        admin.deps.faults.arm(fault)
    return {"armed": dataclasses.asdict(fault)}


def _deliveries(admin: Admin, body: dict[str, Any]) -> Any:
    return [dataclasses.asdict(d) for d in admin.deps.webhooks.received(success=False)]


async def _drain(admin: Admin, body: dict[str, Any]) -> Any:
    """Until every queued delivery is done; the API is served meanwhile."""
    return {"drained": await admin.deps.webhooks.adrain(float(body.get("timeout", 10.0)))}


ACTIONS: dict[str, Action] = {
    "reset": lambda admin, body: admin.reset(),
    "state": lambda admin, body: admin.deps.state.counts(),
    "stats": lambda admin, body: admin.stats(),
    "stats/reset": lambda admin, body: admin.deps.faults.stats.reset(),
    "faults": _arm,
    "faults/clear": lambda admin, body: admin.deps.faults.clear(),
    "latency": lambda admin, body: admin.set_latency(float(body["ms"])),
    "token-ttl": lambda admin, body: admin.set_token_ttl(int(body["seconds"])),
    "webhooks": lambda admin, body: {"webhookId": admin.add_webhook(
        str(body["url"]), str(body.get("secret", "")), events=body.get("events"),
        content_type=str(body.get("contentType", "application/json")),
        retry=body.get("retryConfig"))},
    "webhooks/deliveries": _deliveries,
    "webhooks/drain": _drain,
    "seed/users": lambda admin, body: {"userIds": admin.seed_users(
        list(body["list"]), body.get("options"))},
    "seed/departments": lambda admin, body: {"departmentIds": admin.seed_departments(
        list(body["list"]))},
    "custom-fields": _api(api_config.set_custom_fields),
    "organizations": _api(api_directory.create_organization),
    "departments": _api(api_directory.create_department),
    "departments/update": _api(api_directory.update_department),
    "departments/delete": _api(api_directory.delete_department),
    "users": _api(api_users.create_user),
    "users/update": _api(api_users.update_user),
    "users/delete": _api(api_users.delete_users_batch),
    "users/resign": _api(api_users.resign_user),
    "users/departments": _api(api_directory.set_user_departments),
}
READ_ONLY = ("state", "stats", "webhooks/deliveries")


def admin_routes(admin: Admin) -> list[Route]:
    """POST for every action; GET too for the read-only ones."""
    return [Route(f"/_admin/{name}", _wrap(admin, action),
                  methods=["GET", "POST"] if name in READ_ONLY else ["POST"])
            for name, action in ACTIONS.items()]
