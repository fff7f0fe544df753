"""Failures a route did not catch become answers: a short 502/503, one log line per minute.

Starlette's catch-all ``Exception`` handler sends its response and then re-raises, so
uvicorn logs ``Exception in ASGI application`` with the traceback and closes the keep-alive
connection: WeCom's next retry on it is reset. This middleware sits inside that one and
answers instead, so nothing reaches it.

- the database out of reach (``store.db.UNAVAILABLE``) or the inbox writer stopping →
  503: WeCom and Authing retry, and nothing was stored;
- WeCom or Authing down or throttling (``TransientError``) → 503; refusing our credentials
  (``AuthError``) or the request (other ``SyncError``) → 502;
- anything else is a bug: 503 with its traceback in the log, at most once a minute.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync_core.errors import AuthError, SyncError, TransientError
from sync_core.logs import LogThrottle
from sync_core.store.db import describe, is_unavailable
from sync_core.store.writer import WriterClosed

from .http import json_error, reject

log = logging.getLogger("wecom_sync.receiver")


class AnswerFailures:
    def __init__(self, app: ASGIApp, throttle: LogThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as exc:
            if started:  # too late to answer; uvicorn must end the response
                raise
            status, reason = self.classify(exc, scope)
            path = scope.get("path", "")
            response = (json_error if path.startswith("/ops/") else reject)(status, reason)
            await response(scope, receive, send)

    def classify(self, exc: Exception, scope: Scope) -> tuple[int, str]:
        """The status and short reason for ``exc``, logging it (throttled) on the way."""
        if is_unavailable(exc):
            report_database_unavailable(self.throttle, exc)
            return 503, "database unavailable, retry later"
        if isinstance(exc, WriterClosed):
            self.throttle.log(logging.WARNING, "writer", "inbox closed: shutting down")
            return 503, "shutting down, retry later"
        if isinstance(exc, SyncError):
            remote = exc.remote or "remote"
            self.throttle.log(logging.WARNING, f"{remote}:{exc.kind}", "%s %s: %s",
                              scope.get("method"), scope.get("path"), exc)
            if isinstance(exc, TransientError):
                return 503, f"{remote} unavailable, retry later"
            if isinstance(exc, AuthError):
                return 502, f"{remote} refused the configured credentials"
            return 502, f"{remote} refused the request: {exc.message[:120]}"
        self.throttle.log(logging.ERROR, f"bug:{type(exc).__name__}",
                          "request %s %s failed: %s", scope.get("method"), scope.get("path"),
                          describe(exc), exc_info=exc)
        return 503, "internal error, retry later"


def report_database_unavailable(throttle: LogThrottle, exc: BaseException) -> None:
    """The one line an outage writes per minute, wherever it was noticed first."""
    throttle.log(logging.ERROR, "database", "database unavailable: %s", describe(exc))
