"""What stands in front of every ``/cgi-bin/`` call: accounting, limits, latency, faults.

A pure ASGI wrapper (no body buffering), applied in this order, as a real gateway would:

1. count the call as a read or a write (``FaultPlan.stats``), so tests can assert that a
   dry run made no writes, whatever the answer was;
2. refuse past the concurrency cap with 45033 ("接口并发调用超过限制");
3. wait the configured per-call latency (benchmarks);
4. apply an armed fault: answer an error, hang for a delay, or drop the connection;
5. refuse past the per-endpoint per-minute limit with 45009 (fixed one-minute windows).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from simulators.faults import ConcurrencyGauge, FaultPlan, MinuteRateLimiter

from . import errors
from .errors import error_body

PREFIX = "/cgi-bin/"
WRITE_ENDPOINTS = frozenset({
    "department/create", "department/update", "department/delete",
    "user/create", "user/update", "user/delete", "user/batchdelete",
})

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class Limits:
    """Per-minute limits (one default, per-endpoint overrides) and the concurrency cap."""

    def __init__(self, per_minute: int | None = None, concurrency_cap: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.gauge = ConcurrencyGauge(concurrency_cap)
        self._overrides: dict[str, int | None] = {}
        self._limiters: dict[str, MinuteRateLimiter] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def concurrency_cap(self) -> int | None:
        return self.gauge.cap

    @concurrency_cap.setter
    def concurrency_cap(self, cap: int | None) -> None:
        self.gauge.cap = cap

    def set_per_minute(self, per_minute: int | None, endpoint: str | None = None) -> None:
        """Set the default (``endpoint=None``) or one endpoint's limit; windows restart."""
        with self._lock:
            if endpoint is None:
                self.per_minute = per_minute
                self._overrides.clear()
            else:
                self._overrides[endpoint] = per_minute
            self._limiters.clear()

    def allow(self, endpoint: str) -> bool:
        with self._lock:
            limiter = self._limiters.get(endpoint)
            if limiter is None:
                limit = self._overrides.get(endpoint, self.per_minute)
                limiter = MinuteRateLimiter(limit, clock=self._clock)
                self._limiters[endpoint] = limiter
        return limiter.allow()


class CgiGuard:
    def __init__(self, app: Callable[..., Any], faults: FaultPlan, limits: Limits) -> None:
        self.app = app
        self.faults = faults
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        endpoint = path[len(PREFIX):]
        self.faults.count(endpoint, write=endpoint in WRITE_ENDPOINTS)
        if not self.limits.gauge.enter():
            await _send_json(send, error_body(errors.CONCURRENCY_LIMIT))
            return
        try:
            await self.faults.delay()
            fault = self.faults.take(endpoint)
            if fault is not None and fault.kind == "error":
                payload = dict(fault.payload or {"errcode": errors.SYSTEM_BUSY})
                if "errmsg" not in payload:
                    payload = {**error_body(int(payload.get("errcode", -1))), **payload}
                await _send_json(send, payload, fault.http_status)
                return
            if fault is not None and fault.kind == "drop":
                await _drop(send)
                return
            if fault is not None and fault.kind == "timeout":
                await asyncio.sleep(fault.delay)
            if not self.limits.allow(endpoint):
                await _send_json(send, error_body(errors.FREQ_LIMIT))
                return
            await self.app(scope, receive, send)
        finally:
            self.limits.gauge.leave()


async def _send_json(send: Send, payload: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=UTF-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Promise a body and never send it: the server closes the connection mid-response,
    which a client sees as the peer hanging up (the nearest ASGI gets to a TCP reset)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"64")]})
