"""The one choke point every /api/v3 call goes through.

Order per call: count it (read or write), hold it in the concurrency gauge, wait the
configured latency, apply the rate limit, apply an armed fault (these are real HTTP
statuses), check the token (unless it is the token call itself), parse the parameters,
run the handler under the state lock, and wrap the answer in Authing's envelope. Business
errors are HTTP 200 with the error in the body, as real Authing answers them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..faults import ConcurrencyGauge, Fault, FaultPlan, MinuteRateLimiter
from .auth import TokenIssuer
from .errors import ApiError, bad_request
from .params import Params
from .state import PoolState
from .webhooks import WebhookPusher

log = logging.getLogger("simulators.authing")
SUCCESS_MESSAGE = "操作成功"


@dataclass
class Deps:
    """What handlers may touch; built once by the simulator."""

    state: PoolState
    tokens: TokenIssuer
    faults: FaultPlan
    limiter: MinuteRateLimiter
    gauge: ConcurrencyGauge
    webhooks: WebhookPusher


Handler = Callable[[Deps, Params], Any]


@dataclass(frozen=True)
class Endpoint:
    name: str  # the kebab path after /api/v3/, also the counting key
    method: str
    handler: Handler
    write: bool = False
    public: bool = False  # no token needed (get-management-token)


def ok(data: Any) -> dict[str, Any]:
    return {"statusCode": 200, "message": SUCCESS_MESSAGE, "data": data}


def failure(status: int, message: str, api_code: int | None) -> dict[str, Any]:
    return {"statusCode": status, "message": message, "apiCode": api_code,
            "requestId": uuid.uuid4().hex, "data": None}


class DroppedResponse(Response):
    """Starts a response it never finishes: uvicorn then closes the connection mid-reply."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})


def route(endpoint: Endpoint, deps: Deps) -> Route:
    async def serve(request: Request) -> Response:
        deps.faults.count(endpoint.name, write=endpoint.write)
        if not deps.gauge.enter():
            return JSONResponse(failure(429, "Too Many Requests (concurrency)", None), 429)
        try:
            return await _serve(request, endpoint, deps)
        finally:
            deps.gauge.leave()

    return Route(f"/api/v3/{endpoint.name}", serve, methods=[endpoint.method],
                 name=f"authing:{endpoint.name}")


async def _serve(request: Request, endpoint: Endpoint, deps: Deps) -> Response:
    await deps.faults.delay()
    if not deps.limiter.allow():
        return JSONResponse(failure(429, "Too Many Requests", None), 429)
    fault = deps.faults.take(endpoint.name)
    if fault is not None:
        answer = await _apply_fault(fault)
        if answer is not None:
            return answer
    try:
        if not endpoint.public:
            deps.tokens.check(request.headers)
        params = await _params(request, endpoint.method)
        with deps.state.lock:
            data = endpoint.handler(deps, params)
        return JSONResponse(ok(data))
    except ApiError as exc:
        return JSONResponse(failure(exc.status, exc.message, exc.api_code))
    except ClientDisconnect:  # the caller gave up (a timeout, a stopped run): not a bug
        return Response(status_code=499)
    except Exception:  # a simulator bug: say so loudly rather than hide it
        log.exception("authing simulator failed on %s", endpoint.name)
        return JSONResponse(failure(500, "simulator internal error", 1000), 500)


async def _apply_fault(fault: Fault) -> Response | None:
    if fault.kind == "timeout":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "drop":
        return DroppedResponse()
    body = fault.payload or failure(fault.http_status, f"simulated fault {fault.http_status}",
                                    1000)
    return JSONResponse(body, fault.http_status)


async def _params(request: Request, method: str) -> Params:
    if method == "GET":
        multi: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            multi.setdefault(key, []).append(value)
        return Params({k: v[-1] for k, v in multi.items()}, from_query=True, multi=multi)
    raw = await request.body()
    if not raw.strip():
        return Params({})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return Params(body)
