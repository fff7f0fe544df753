"""``/authing/webhook``: check the shared secret, store each named entity, reply 200."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.authing.events import MalformedWebhook, handled, parse_delivery
from sync_core.http.documents import MalformedDocument, decode_utf8, json_object
from sync_core.settings import DirectionSetting
from sync_core.store.inbox import NewEvent
from sync_core.store.models import EventSource, utcnow

from .context import ctx
from .http import BodyTooLarge, read_body, reject, secret_matches

log = logging.getLogger(__name__)
ROUTE = "/authing/webhook"


async def receive(request: Request) -> Response:
    c = ctx(request)
    secret = c.settings.authing_webhook_secret
    if secret is None:
        return reject(503, "webhook not configured: set WECOM_SYNC_AUTHING_WEBHOOK_SECRET")
    presented = (request.headers.get("x-authing-webhook-secret")
                 or request.headers.get("x-authing-token"))
    if not secret_matches(presented, secret.get_secret_value()):
        c.throttle.log(logging.WARNING, "authing-secret",
                       "Authing webhook refused: %s x-authing-webhook-secret; check that "
                       "WECOM_SYNC_AUTHING_WEBHOOK_SECRET equals the webhook's secret in "
                       "Authing's console", "wrong" if presented else "missing")
        c.metrics.callbacks.labels(ROUTE, "bad_secret").inc()
        return reject(401, "missing or wrong webhook secret")
    try:
        raw = await read_body(request, c.settings.callback_max_body_bytes)
        body = _decode(raw, request.headers.get("content-type", ""))
        entries = parse_delivery(body)
    except BodyTooLarge:
        return reject(413, "body too large")
    except (MalformedDocument, MalformedWebhook) as exc:
        c.metrics.callbacks.labels(ROUTE, "bad_request").inc()
        return reject(400, str(exc))

    event_name = str(body.get("eventName"))
    if not handled(event_name):
        # Counted, answered, dropped: nothing we apply (login, role:*, ...).
        c.metrics.ignored.labels(event_name[:64]).inc()
        c.metrics.callbacks.labels(ROUTE, "ignored").inc()
        return JSONResponse({"ok": True, "stored": 0, "ignored": event_name})
    # With downstream off, a webhook is recorded as settled, never queued: switching
    # downstream on later must not replay a stale backlog as writes.
    settled = (None if c.settings.direction in (DirectionSetting.DOWNSTREAM,
                                                DirectionSetting.BOTH)
               else "downstream off (WECOM_SYNC_DIRECTION=upstream): recorded, not applied")
    stored = 0
    for entry in entries:
        result = await c.writer.submit(NewEvent(
            source=EventSource.AUTHING.value,
            dedupe_key=entry.dedupe_key,
            entity_kind=entry.entity_kind,
            entity_key=entry.entity_key,
            event_type=entry.event_type,
            payload=entry.payload,
            received_at=utcnow(),
            settled=settled,
        ))
        stored += not result.duplicate
    c.metrics.callbacks.labels(ROUTE, "stored" if stored else "duplicate").inc()
    return JSONResponse({"ok": True, "stored": stored})


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    text = decode_utf8(raw)
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return json_object(text)
