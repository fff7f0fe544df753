"""``AuthingSimulator``: the whole fake Authing, in-process (tests) or as an app (CLI).

    with AuthingSimulator(userpool_id="pool", secret="s3cret",
                          organization_code="wecom") as sim:
        httpx.post(sim.url + "/api/v3/get-management-token", json={...})
        sim.admin.create_user(username="zs", externalId="zs")
        sim.webhooks.drain()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..faults import ConcurrencyGauge, FaultPlan, MinuteRateLimiter
from ..server import BackgroundServer
from . import api_config, api_directory, api_users
from .admin import Admin
from .admin_http import admin_routes
from .auth import TokenIssuer
from .endpoint import Deps, failure, route
from .records import MonotonicClock
from .state import PoolState
from .webhooks import WebhookPusher

ENDPOINTS = [*api_users.ENDPOINTS, *api_directory.ENDPOINTS, *api_config.ENDPOINTS]


class AuthingSimulator:
    """One user pool. ``clock`` (seconds) drives token expiry and timestamps."""

    def __init__(self, userpool_id: str = "sim-userpool", secret: str = "sim-secret", *,
                 organization_code: str | None = None, organization_name: str | None = None,
                 root_open_department_id: str | None = "1", token_ttl: int = 7200,
                 latency_ms: float = 0.0, rate_limit_per_minute: int | None = None,
                 concurrency_cap: int | None = None, webhook_url: str | list[str] | None = None,
                 webhook_secret: str = "", webhook_content_type: str = "application/json",
                 webhook_timeout: float = 5.0, webhook_retry_delay_scale: float = 1.0,
                 webhook_form_style: str = "json", webhook_lanes: int = 1,
                 clock: Callable[[], float] = time.time,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.userpool_id = userpool_id
        self.host, self.port = host, port
        self.clock = MonotonicClock(clock)
        self.state = PoolState(userpool_id, self.clock)
        self.tokens = TokenIssuer(userpool_id, secret, ttl=token_ttl, clock=clock)
        self.faults = FaultPlan()
        self.faults.latency = latency_ms / 1000.0
        self.webhooks = WebhookPusher(userpool_id, clock=self.clock, timeout=webhook_timeout,
                                      retry_delay_scale=webhook_retry_delay_scale,
                                      form_style=webhook_form_style, lanes=webhook_lanes)
        self.state.sink = self.webhooks.publish
        self.deps = Deps(self.state, self.tokens, self.faults,
                         MinuteRateLimiter(rate_limit_per_minute),
                         ConcurrencyGauge(concurrency_cap), self.webhooks)
        self.admin = Admin(self.deps)
        urls = [webhook_url] if isinstance(webhook_url, str) else list(webhook_url or [])
        for url in urls:
            self.admin.add_webhook(url, webhook_secret, content_type=webhook_content_type)
        if organization_code:
            self.admin.create_organization(organization_code, organization_name,
                                           root_open_department_id)
        self.app = self._build_app()
        self._server: BackgroundServer | None = None

    def _build_app(self) -> Starlette:
        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True, "userpoolId": self.userpool_id})

        async def no_route(request: Request, exc: Exception) -> JSONResponse:
            status = exc.status_code if isinstance(exc, HTTPException) else 404
            return JSONResponse(failure(status, f"Cannot {request.method} {request.url.path}",
                                        None), status)

        routes = [route(endpoint, self.deps) for endpoint in ENDPOINTS]
        routes += [*admin_routes(self.admin), Route("/_admin/health", health)]
        return Starlette(routes=routes,
                         exception_handlers={404: no_route, 405: no_route})

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.url

    @property
    def stats(self) -> Any:
        """Reads and writes per endpoint (``stats.total_writes == 0`` after a dry run)."""
        return self.faults.stats

    def start(self) -> AuthingSimulator:
        self._server = BackgroundServer(self.app, host=self.host, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.webhooks.close()

    def __enter__(self) -> AuthingSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
