"""Console sign-in: the ops token, once, buys a signed session cookie.

The cookie holds no secret: only a random CSRF token, the operator's name as typed on the
sign-in form (optional, recorded with their decisions) and the sign-in time, signed
(itsdangerous) with a key derived from the ops token by HMAC, so it is worthless without
the token and every session ends when the token changes. It is HttpOnly, SameSite=Strict,
scoped to ``/ops/console`` and Secure over HTTPS. Every POST carries the CSRF token in a
hidden field, compared in constant time with the one in the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "wecom_sync_console"
PATH = "/ops/console"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts


def _serializer(ops_token: str) -> URLSafeTimedSerializer:
    key = hmac.new(ops_token.encode("utf-8"), b"wecom-sync console session",
                   hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="console-session")


def session(request: Request, ops_token: str | None) -> dict[str, Any] | None:
    """The signed-in session, or None (no token configured, no cookie, forged, expired)."""
    raw = request.cookies.get(COOKIE)
    if not ops_token or not raw:
        return None
    try:
        data = _serializer(ops_token).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None


def sign_in(response: Response, request: Request, ops_token: str, *,
            name: str | None = None) -> None:
    """``name``: the operator's name (``receiver.actor``), recorded with what they do."""
    value = _serializer(ops_token).dumps({"csrf": secrets.token_urlsafe(24), "name": name})
    response.set_cookie(COOKIE, value, max_age=MAX_AGE, path=PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def sign_out(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


def csrf_ok(session_data: dict[str, Any], presented: object) -> bool:
    if not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(presented.encode(), str(session_data["csrf"]).encode())
