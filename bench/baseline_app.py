"""Baseline for the ingest benchmark: the product's callback path minus storage.

It runs the very functions ``receiver.routes_wecom.receive`` runs (body read, envelope
parse, signature check, AES decrypt, replay window, event parse, dedupe key, payload) and
replies ``success`` without touching a database, so stored/baseline isolates the cost of
the durable inbox write. It is served by uvicorn with the same options as ``wecom-sync
serve``. Run: ``python -m bench.baseline_app`` (reads the same ``WECOM_SYNC_*`` settings).
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from receiver.app import build_crypto
from receiver.http import BodyTooLarge, read_body, reject
from sync_core.http.documents import MalformedDocument
from sync_core.settings import Settings, load_settings
from sync_core.wecom.crypto import WeComCrypto, WeComCryptoError
from sync_core.wecom.envelope import parse_envelope
from sync_core.wecom.events import dedupe_key, parse_event, to_payload


def create_baseline_app(settings: Settings) -> Starlette:
    """Starlette app with ``POST /wecom/callback`` (no storage) and ``GET /readyz``."""
    crypto = build_crypto(settings)
    if crypto is None:
        raise SystemExit("baseline: WECOM_SYNC_WECOM_* callback settings are required")

    async def receive(request: Request) -> Response:
        return await _receive(request, crypto, settings)

    async def readyz(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    return Starlette(routes=[
        Route("/wecom/callback", receive, methods=["POST"]),
        Route("/readyz", readyz, methods=["GET"]),
    ])


async def _receive(request: Request, crypto: WeComCrypto, settings: Settings) -> Response:
    q = request.query_params
    signature, timestamp, nonce = q.get("msg_signature"), q.get("timestamp"), q.get("nonce")
    if not (signature and timestamp and nonce and timestamp.isdigit()):
        return reject(400, "missing or bad query parameters")
    try:
        body = await read_body(request, settings.callback_max_body_bytes)
        envelope = parse_envelope(body)
        plaintext = crypto.decrypt_message(signature, timestamp, nonce, envelope.encrypt)
        if abs(time.time() - int(timestamp)) > settings.wecom_callback_max_age_seconds:
            return reject(403, "timestamp outside the accepted window")
        event = parse_event(plaintext)
    except BodyTooLarge:
        return reject(413, "body too large")
    except (MalformedDocument, WeComCryptoError) as exc:
        return reject(400, str(exc))
    # Everything the product computes for the inbox row, so only the write itself differs.
    dedupe_key(plaintext)
    to_payload(event)
    return PlainTextResponse("success")


def main() -> int:
    import uvicorn

    settings = load_settings()
    uvicorn.run(create_baseline_app(settings), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
