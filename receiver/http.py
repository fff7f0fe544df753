"""Small HTTP helpers shared by the routes: bounded body reads, short error replies, auth."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


class BodyTooLarge(Exception):
    pass


def reject(status: int, reason: str) -> PlainTextResponse:
    """Every refusal is a short plain-text reason: enough to debug, nothing to exploit."""
    return PlainTextResponse(reason, status_code=status)


def json_error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the raw body, refusing early on Content-Length and while streaming."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def secret_matches(presented: str | None, expected: str) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def check_ops_token(request: Request, token: str | None) -> Response | None:
    """None when the bearer token is right; otherwise the reply to send.

    No token configured → 403 (ops is switched off), wrong/missing bearer → 401.
    """
    if not token:
        return json_error(403, "ops API disabled: set WECOM_SYNC_OPS_TOKEN")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not secret_matches(value.strip(), token):
        response = json_error(401, "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="wecom-sync ops"'
        return response
    return None
